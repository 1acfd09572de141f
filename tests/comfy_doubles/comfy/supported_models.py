"""Double of comfy.supported_models: the detection configs of the families the pack must tell apart."""

from . import latent_formats


class BASE:
    unet_config: dict = {}
    latent_format = latent_formats.SD15
    manual_cast_dtype = None

    def __init__(self, unet_config):
        self.unet_config = unet_config.copy()


class SD15(BASE):
    unet_config = {
        "context_dim": 768,
        "model_channels": 320,
        "use_linear_in_transformer": False,
        "adm_in_channels": None,
        "use_temporal_attention": False,
    }


class SD20(BASE):
    unet_config = {
        "context_dim": 1024,
        "model_channels": 320,
        "use_linear_in_transformer": True,
        "adm_in_channels": None,
        "use_temporal_attention": False,
    }


class SD21UnclipH(SD20):
    unet_config = {
        "context_dim": 1024,
        "model_channels": 320,
        "use_linear_in_transformer": True,
        "adm_in_channels": 2048,
        "use_temporal_attention": False,
    }


class SDXL(BASE):
    unet_config = {
        "model_channels": 320,
        "use_linear_in_transformer": True,
        "transformer_depth": [0, 0, 2, 2, 10, 10],
        "context_dim": 2048,
        "adm_in_channels": 2816,
        "use_temporal_attention": False,
    }
    latent_format = latent_formats.SDXL


class Flux(BASE):
    unet_config = {"image_model": "flux", "guidance_embed": True}
    latent_format = latent_formats.Flux
