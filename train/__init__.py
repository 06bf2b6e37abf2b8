"""SFO-Net, frame predictors, SOFF fine-tuning and evaluation.

Implemented by issues #5 and #6; see ../shared/design/ARCHITECTURE.md, "SFO-Net" and "SOFF fine-tuning".
"""
