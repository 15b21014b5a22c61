"""SAFNetSpineLib: level-by-level spine MRI segmentation with SAFNet.

Pure Python (torch, numpy, SimpleITK, MONAI); never imports slicer, qt or vtk, so it
runs in a shell, a notebook, a cluster job or as the child process of the Slicer module::

    import SAFNetSpineLib as sp
    result = sp.segment("case.nii.gz")          # active or bundled weights, CPU or GPU
    print(result.naming, result.volumes_ml)
    m = sp.measure(result.labels)

Every name below is imported on first use (PEP 562): ``import SAFNetSpineLib`` loads
neither torch nor SimpleITK, so the command line's ``--help`` stays fast.
"""

from SAFNetSpineLib.lazy import lazy_attributes

__version__ = "0.1.0"

#: Public name -> the submodule that defines it.
_PUBLIC = {
    "segment": "api",
    "measure": "api",
    "resolve_weights": "api",
    "Segmenter": "inference.segmenter",
    "SegmentationResult": "inference.segmenter",
    "read_volume": "io.volume_io",
    "write_volume": "io.volume_io",
    "Volume": "volume",
    "default_weights_dir": "weights",
    "sample_path": "bundled",
}

__all__ = ["__version__", *_PUBLIC]

__getattr__ = lazy_attributes(__name__, _PUBLIC)


def __dir__() -> list[str]:
    return sorted([*globals(), *_PUBLIC])
