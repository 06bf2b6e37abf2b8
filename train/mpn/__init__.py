"""MPN, the Meta Prototype Network (Lv et al., CVPR 2021): a peer method of the harness. The model (model.py) and
its objective (losses.py); ../shared/design/peers.md is the spec."""
