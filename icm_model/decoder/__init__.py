"""The trained in-context decoder: RoI query and inter-/intra-similarity (:mod:`.similarity`), the matting head
(:mod:`.head`), both as the checkpoint holds them (:mod:`.model`), their configuration and strict checkpoint loading."""
