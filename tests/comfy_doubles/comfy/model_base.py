"""Double of comfy.model_base: ModelType and a BaseModel holding the diffusion model and its config."""

from enum import Enum

import torch


class ModelType(Enum):
    EPS = 1
    V_PREDICTION = 2
    V_PREDICTION_EDM = 3
    STABLE_CASCADE = 4
    EDM = 5
    FLOW = 6
    V_PREDICTION_CONTINUOUS = 7
    FLUX = 8
    IMG_TO_IMG = 9
    FLOW_COSMOS = 10


class BaseModel(torch.nn.Module):
    def __init__(self, model_config, model_type, diffusion_model, model_sampling):
        super().__init__()
        self.model_config = model_config
        self.model_type = model_type
        self.diffusion_model = diffusion_model
        self.model_sampling = model_sampling
        self.latent_format = model_config.latent_format()
        self.manual_cast_dtype = model_config.manual_cast_dtype

    def get_dtype(self):
        return self.diffusion_model.dtype
