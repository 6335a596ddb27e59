"""Training a swap model: data, augmentation, losses, the trainer, checkpoints, plots, pretrained starts."""
