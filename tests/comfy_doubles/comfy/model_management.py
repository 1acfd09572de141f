"""Double of comfy.model_management (CPU only): devices, model loading log, interruption."""

import torch


class InterruptProcessingException(Exception):
    pass


interrupt_processing = False
loaded_log: list = []  # every list of patchers passed to load_models_gpu, for tests


def get_torch_device():
    return torch.device("cpu")


def intermediate_device():
    return torch.device("cpu")


def unet_offload_device():
    return torch.device("cpu")


def soft_empty_cache(force=False):
    pass


def load_models_gpu(
    models, memory_required=0, force_patch_weights=False, minimum_memory_required=None, force_full_load=False
):
    loaded_log.append(list(models))
    for patcher in models:
        patcher.model.to(patcher.load_device)


def interrupt_current_processing(value=True):
    global interrupt_processing
    interrupt_processing = value


def processing_interrupted():
    return interrupt_processing


def throw_exception_if_processing_interrupted():
    global interrupt_processing
    if interrupt_processing:
        interrupt_processing = False
        raise InterruptProcessingException()
