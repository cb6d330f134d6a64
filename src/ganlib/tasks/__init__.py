"""What is trained: one module per job (the semi-supervised GAN's losses so far)."""
