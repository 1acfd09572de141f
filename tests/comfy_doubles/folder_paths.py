"""Double of ComfyUI's folder_paths: model folders by name, file lists, full paths."""

import os

supported_pt_extensions = {".ckpt", ".pt", ".pt2", ".bin", ".pth", ".safetensors", ".pkl", ".sft"}
models_dir = os.environ.get("ICM_TEST_MODELS_DIR", os.path.join(os.getcwd(), "models"))
folder_names_and_paths: dict = {}
temp_directory = os.path.join(os.path.dirname(models_dir), "temp")
input_directory = os.path.join(os.path.dirname(models_dir), "input")


def get_temp_directory():
    return temp_directory


def get_input_directory():
    return input_directory


def add_model_folder_path(folder_name, full_folder_path, is_default=False):
    if folder_name in folder_names_and_paths:
        paths, _ = folder_names_and_paths[folder_name]
        if full_folder_path in paths:
            if is_default and paths[0] != full_folder_path:
                paths.remove(full_folder_path)
                paths.insert(0, full_folder_path)
        elif is_default:
            paths.insert(0, full_folder_path)
        else:
            paths.append(full_folder_path)
    else:
        folder_names_and_paths[folder_name] = ([full_folder_path], set())


def filter_files_extensions(files, extensions):
    return sorted(f for f in files if os.path.splitext(f)[-1].lower() in extensions or len(extensions) == 0)


def get_filename_list(folder_name):
    paths, extensions = folder_names_and_paths[folder_name]
    found = set()
    for path in paths:
        if os.path.isdir(path):
            for root, _, files in os.walk(path, followlinks=True):
                found.update(os.path.relpath(os.path.join(root, f), path) for f in files)
    return filter_files_extensions(found, extensions)


def get_full_path(folder_name, filename):
    for path in folder_names_and_paths[folder_name][0]:
        full = os.path.join(path, filename)
        if os.path.isfile(full):
            return full
    return None


def get_full_path_or_raise(folder_name, filename):
    full = get_full_path(folder_name, filename)
    if full is None:
        raise FileNotFoundError(f"Model in folder '{folder_name}' with filename '{filename}' not found.")
    return full


def get_folder_paths(folder_name):
    return folder_names_and_paths[folder_name][0][:]
