"""train-zxvad: zxVAD's training on the source (generator, discriminator and normalcy classifier)."""
