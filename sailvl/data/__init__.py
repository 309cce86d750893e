"""Data: sample schema, image loading and tiling, chat template and label masking, readers, packing, loaders."""
