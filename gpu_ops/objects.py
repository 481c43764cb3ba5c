"""Object and scene tags: what is in the picture ("laptop", "pizza", "cell phone"), with confidence.

:class:`YoloObjectDetector` answers ``predict(images)`` (RGB ``uint8``) with one list of
:class:`DetectedObject` per image (label, score, box in that image's pixels, best first). Labels
are the detector's class names (COCO's 80 for YOLOv8); which *category* a label belongs to
(electronics, food, documents, ...) is not the model's business: the warehouse's
``tag_category_map`` says, and can be edited and re-applied without running any model.

Why YOLOv8 (COCO classes) and not RAM++ or OWLv2:

- **RAM++** (recognize-anything) is not loadable through a maintained package: its code lives in a
  research repository (no PyPI release that installs beside torch 2.13), so it would be vendored code
  plus a 1.5 GB checkpoint. Its 4,585-tag vocabulary is the better fit for "scene" tags, but our
  scenes already come from the zero-shot SigLIP taxonomy (``scene_*`` tags).
- **OWLv2** (``transformers``' ``Owlv2ForObjectDetection``) is open-vocabulary, which we would
  want for a taxonomy of arbitrary object names, but it is a ViT-B/16 at 960 px: several seconds per
  image on a CPU (our default), against tens of milliseconds for YOLOv8s at 640, and a query
  per label to encode.
- **YOLOv8** through ``ultralytics`` is already installed and loaded the same way for the person
  detector (one weights file, ``.yaml`` random-weight configs for tests, ONNX export, fp16 on CUDA),
  batches well on a GPU and its 80 COCO classes cover the photo plan's object examples (laptop,
  cell phone, pizza, cup, book, car, dog ...). Scenes with no object class (landscape) stay with
  the zero-shot tags. ``bench/objects.py`` measures it against the person detector.

Options: ``conf`` (0.25), ``iou`` (0.5), ``imgsz`` (640), ``max_det`` (50).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from gpu_ops.compat import restore_pil_open
from gpu_ops.detection import YoloPersonDetector


@dataclass(frozen=True)
class DetectedObject:
    label: str
    score: float
    x1: float
    y1: float
    x2: float
    y2: float


def _coco_names() -> dict[int, str] | None:
    import ultralytics
    import yaml

    restore_pil_open()  # importing ultralytics patched PIL.Image.open (see gpu_ops.compat)

    path = Path(ultralytics.__file__).parent / "cfg" / "datasets" / "coco.yaml"
    if not path.is_file():
        return None
    names = yaml.safe_load(path.read_text(encoding="utf-8")).get("names") or {}
    return {int(k): str(v) for k, v in names.items()} if isinstance(names, dict) else None


class YoloObjectDetector(YoloPersonDetector):
    """ultralytics YOLO, every class; weights as for :class:`~gpu_ops.detection.YoloPersonDetector`."""

    def _load(self) -> None:
        super()._load()
        self.conf = float(self.options.get("conf", 0.25))
        names = {int(k): str(v) for k, v in (self.model.names or {}).items()}
        if names and all(v == str(k) for k, v in names.items()) and len(names) == 80:
            # Built from a bare config (random weights): its classes are numbered, not named. They
            # are COCO's 80 in COCO's order, which ultralytics ships as its dataset config.
            names = _coco_names() or names
        self.names = names

    def _predict(self, batch: list[np.ndarray]) -> list[list[DetectedObject]]:
        bgr = [np.ascontiguousarray(img[:, :, ::-1]) for img in batch]  # ultralytics reads arrays as BGR
        results = self.model.predict(
            bgr, conf=self.conf, iou=self.iou, imgsz=self.imgsz, max_det=self.max_det, device=self.run_device,
            half=self.device.fp16 and self.run_device != "cpu", verbose=False,
        )
        out: list[list[DetectedObject]] = []
        for img, result in zip(batch, results, strict=True):
            boxes = result.boxes
            h, w = img.shape[:2]
            found = []
            if len(boxes):
                xyxy = boxes.xyxy.float().cpu().numpy()
                conf = boxes.conf.float().cpu().numpy()
                cls = boxes.cls.int().cpu().numpy()
                for (x1, y1, x2, y2), score, c in zip(xyxy, conf, cls, strict=True):
                    x1, x2 = float(np.clip(x1, 0, w)), float(np.clip(x2, 0, w))
                    y1, y2 = float(np.clip(y1, 0, h)), float(np.clip(y2, 0, h))
                    if x2 > x1 and y2 > y1:
                        found.append(DetectedObject(self.names.get(int(c), str(int(c))),
                                                    float(np.clip(score, 0.0, 1.0)), x1, y1, x2, y2))
            out.append(sorted(found, key=lambda o: -o.score))
        return out
