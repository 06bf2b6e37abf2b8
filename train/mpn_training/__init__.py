"""MPN's training: the meta-learning of its Meta Prototype Unit (meta.py); the model is train.mpn's."""
