"""Double of comfy.sd: VAE and CLIP around small diffusers/torch modules."""

import torch


class VAE:
    """encode(IMAGE [B, H, W, C] in 0..1) -> raw latents [B, 4, H/8, W/8] (posterior mode, not scaled)."""

    def __init__(self, autoencoder):
        self.first_stage_model = autoencoder.eval()
        self.downscale_ratio = 8
        self.latent_channels = autoencoder.config.latent_channels
        self.output_device = torch.device("cpu")
        self.process_input = lambda image: image * 2.0 - 1.0
        self.output_dtype = torch.float32  # 0.3.64 returns float32; newer ComfyUI returns vae_output_dtype()

    def vae_encode_crop_pixels(self, pixels):
        dims = pixels.shape[1:-1]
        for d in range(len(dims)):
            x = (dims[d] // self.downscale_ratio) * self.downscale_ratio
            x_offset = (dims[d] % self.downscale_ratio) // 2
            if x != dims[d]:
                pixels = pixels.narrow(d + 1, x_offset, x)
        return pixels

    def encode(self, pixel_samples):
        pixel_samples = self.vae_encode_crop_pixels(pixel_samples).movedim(-1, 1)
        with torch.no_grad():
            posterior = self.first_stage_model.encode(self.process_input(pixel_samples)).latent_dist
        return posterior.mode().to(self.output_device, self.output_dtype)


class CLIP:
    """tokenize + encode_from_tokens_scheduled -> CONDITIONING [[cond [1, 77, D], {"pooled_output": ...}]]."""

    def __init__(self, empty_prompt_embedding):
        self.embedding = empty_prompt_embedding
        self.tokenized: list[str] = []

    def tokenize(self, text, return_word_ids=False, **kwargs):
        self.tokenized.append(text)
        return {"h": [[(49406, 1.0), (49407, 1.0)] + [(0, 1.0)] * 75]}

    def encode_from_tokens_scheduled(self, tokens, unprojected=False, add_dict=None, show_pbar=True):
        return [[self.embedding.clone(), {"pooled_output": self.embedding[:, 0]}]]
