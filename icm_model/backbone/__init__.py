"""The frozen SD2.1 U-Net as a feature extractor: capture passes (features, self-attention, early stop), the noise
ensemble, and the diffusers backbone with its single-file SD2.1 reader (:mod:`.diffusers_backbone`, imported on
demand: it needs diffusers)."""
