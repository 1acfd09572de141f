"""Double of comfy.latent_formats: the SD1.x/SD2.x latent format."""


class LatentFormat:
    scale_factor = 1.0

    def process_in(self, latent):
        return latent * self.scale_factor

    def process_out(self, latent):
        return latent / self.scale_factor


class SD15(LatentFormat):
    def __init__(self, scale_factor=0.18215):
        self.scale_factor = scale_factor


class SDXL(LatentFormat):
    scale_factor = 0.13025


class Flux(LatentFormat):
    scale_factor = 0.3611
