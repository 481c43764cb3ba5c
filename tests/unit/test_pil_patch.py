"""ultralytics patches PIL.Image.open for the whole process on import; a corrupt image must still be
``not_an_image`` afterwards, with no run-time ``pip install`` of pi-heif (gpu_ops.compat.restore_pil_open)."""

from __future__ import annotations

from PIL import Image

from assets.images.imaging import ImageError, process_image_bytes
from gpu_ops.compat import restore_pil_open


def test_a_corrupt_image_after_ultralytics_was_imported_is_not_an_image():
    import ultralytics.utils.patches as patches  # what importing YOLO does, anywhere in the process

    Image.open = patches.image_open  # the patch as ultralytics applies it (it may have been undone already)
    try:
        result = None
        try:
            process_image_bytes(b"\xff\xd8 definitely not a JPEG " * 16)
        except ImageError as err:
            result = err.reason
        assert result == "not_an_image"
        assert Image.open is patches._image_open  # decoding put PIL's own open back
        assert restore_pil_open() is False  # nothing left to undo
    finally:
        Image.open = patches._image_open


def test_loading_the_object_detector_undoes_the_patch():
    import ultralytics.utils.patches as patches

    from gpu_ops.objects import _coco_names

    Image.open = patches.image_open
    try:
        assert _coco_names()  # imports ultralytics, reads its bundled COCO names
        assert Image.open is patches._image_open
    finally:
        Image.open = patches._image_open
