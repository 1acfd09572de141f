"""Double of comfy.model_management (CPU only): devices, model loading log, interruption."""

import torch


class InterruptProcessingException(Exception):
    pass


interrupt_processing = False
loaded_log: list = []  # every list of patchers passed to load_models_gpu, for tests
memory_log: list = []  # (memory_required, minimum_memory_required) of every load_models_gpu call, for tests
free_memory_bytes = 1 << 40  # what get_free_memory reports; tests lower it to simulate a small device
OOM_EXCEPTION = torch.cuda.OutOfMemoryError


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
    memory_log.append((memory_required, minimum_memory_required))
    for patcher in models:
        patcher.model.to(patcher.load_device)


def get_free_memory(dev=None, torch_free_too=False):
    return free_memory_bytes


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
