"""``vision/faces``: faces (MediaPipe), their 512-d ArcFace embeddings when the weights are present,
and per-creator identity clusters.

Without ArcFace weights in the model cache (``creatorlens models pull face_embedder``) faces are
still detected and stored, with no embedding and no cluster; the metadata says so.
"""

from typing import Any

import dagster as dg
import numpy as np
import pandas as pd

from assets.common.keys import CREATOR_IMAGES, FACES
from assets.common.metadata import Skip, batch_check, check_result, stage_ran_check
from assets.common.quality import validate_frame
from assets.vision.common import (
    BASE_COLUMNS,
    all_true,
    box_inside,
    coverage_expectations,
    cpu_pool,
    in_unit_range,
    ok_images,
    per_image,
    safe_predict,
    scale_to_original,
    scan_images,
    stage_asset,
    stage_output,
    status_row,
)
from assets.vision.config import VisionConfig
from gpu_ops.faces import EMBEDDING_DIM, FaceBox, align_face, cluster_embeddings
from gpu_ops.registry import WeightsMissing, pull_command
from resources.blobstore import BlobStore
from resources.models import ModelRegistry

FACE_COLUMNS = [
    *BASE_COLUMNS, "face_idx", "x1", "y1", "x2", "y2", "score", "keypoints", "embedding", "embedding_model",
    "embedding_error", "cluster_id", "image_width", "image_height", "model_version",
]


def face_rows(image: dict[str, Any], array: np.ndarray, faces: list[FaceBox], version: str) -> list[dict[str, Any]]:
    if not faces:
        return [status_row(image, "no_face", "none_detected", model_version=version)]
    sx, sy = scale_to_original(image, array)
    return [
        status_row(image, "ok", face_idx=i, x1=f.x1 * sx, y1=f.y1 * sy, x2=f.x2 * sx, y2=f.y2 * sy, score=f.score,
                   keypoints=(f.keypoints * np.array([sx, sy], dtype=np.float32)).astype(float).ravel().tolist(),
                   embedding=None, embedding_model=None, embedding_error=None, cluster_id=None,
                   image_width=image["width"], image_height=image["height"], model_version=version)
        for i, f in enumerate(faces)
    ]


def assign_clusters(df: pd.DataFrame, eps: float, min_samples: int) -> pd.Series:
    """Cluster id per face with an embedding, per creator (largest cluster 0); NA for noise and others."""
    clusters = pd.Series(pd.NA, index=df.index, dtype="Int64")
    embedded = df[(df["status"] == "ok") & df["embedding"].notna()].sort_values(["image_key", "face_idx"])
    for _, group in embedded.groupby(["platform", "username"], sort=True):
        labels = cluster_embeddings(np.stack(group["embedding"].to_numpy()), eps=eps, min_samples=min_samples)
        clusters.loc[group.index] = [int(label) if label >= 0 else pd.NA for label in labels]
    return clusters


@stage_asset(FACES, ("creator_images", CREATOR_IMAGES), kinds={"python", "onnx", "pandas"},
             description="Faces (MediaPipe's bundled detector), 512-d ArcFace embeddings on ONNX Runtime when its "
             "weights are in the model cache, and identity clusters per creator (DBSCAN on cosine distance).")
def faces(
    context: dg.AssetExecutionContext, creator_images: pd.DataFrame, blobs: BlobStore, models: ModelRegistry,
    vision: VisionConfig,
) -> dg.Output[pd.DataFrame]:
    detector = models.load("face_detector")
    try:
        embedder = models.load("face_embedder")
        embedding_note = f"{embedder.version} on {embedder.device}"
    except WeightsMissing as missing:
        embedder, embedding_note = None, f"skipped: {missing}"
        context.log.warning(f"faces stored without embeddings: {missing}")

    images = ok_images(creator_images)
    with cpu_pool(detector, vision, len(images)) as finder:

        def process(images: list[dict[str, Any]], arrays: list[np.ndarray]) -> list[list[dict[str, Any]]]:
            aligned: list[tuple[dict[str, Any], np.ndarray]] = []

            def rows_for(image: dict[str, Any], array: np.ndarray, found: list[FaceBox]) -> list[dict[str, Any]]:
                rows = face_rows(image, array, found, detector.version)
                if embedder is not None:
                    aligned.extend((row, align_face(array, face)) for face, row in zip(found, rows, strict=False))
                return rows

            out = per_image(finder, rows_for)(images, arrays)
            if embedder is not None and aligned:
                for (row, _), vector in zip(aligned, safe_predict(embedder, [a for _, a in aligned]), strict=True):
                    if isinstance(vector, Exception):
                        row["embedding_error"] = f"{type(vector).__name__}: {vector}"[:500]
                    else:
                        row["embedding"], row["embedding_model"] = np.asarray(vector, np.float32).tolist(), embedder.version
            return out

        scan = scan_images(context, images, blobs, vision, models.batch_size, process, stage="faces")
    out = stage_output(scan, FACE_COLUMNS, ints=("face_idx", "image_width", "image_height"), unit="faces",
                       versions={"face_detector": detector.version,
                                 "face_embedder": embedder.version if embedder else None})
    df = out.value
    df["cluster_id"] = assign_clusters(df, vision.face_cluster_eps, vision.face_cluster_min_samples)
    clusters = df.dropna(subset=["cluster_id"]).groupby(["username", "cluster_id"]).ngroups
    return dg.Output(df, metadata={
        **out.metadata, "embeddings": int(df["embedding"].notna().sum()), "embedding_backend": embedding_note,
        "embedding_failures": int(df["embedding_error"].notna().sum()), "clusters": int(clusters)})


def _unit_vector(v: Any) -> bool | None:
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return None
    arr = np.asarray(v, dtype=np.float64)
    return bool(arr.shape == (EMBEDDING_DIM,) and np.isfinite(arr).all() and abs(np.linalg.norm(arr) - 1) < 1e-3)


@batch_check(asset=FACES,
                additional_ins={"creator_images": dg.AssetIn(key=CREATOR_IMAGES)},
                description="Every ok image has rows, face boxes inside the image, scores in [0, 1], "
                            "embeddings 512-d unit vectors with their model named, unique (image, face) keys.")
def faces_valid(faces: pd.DataFrame, creator_images: pd.DataFrame, vision: VisionConfig) -> dg.AssetCheckResult:
    import great_expectations.expectations as gxe

    frame = faces.assign(
        box_in_image=box_inside(faces),
        embedding_ok=faces["embedding"].map(_unit_vector),
        embedding_named=(faces["embedding"].notna() == faces["embedding_model"].notna()).astype(object)
        .where(faces["status"] == "ok", None),
        face_key=faces["image_key"] + "#" + faces["face_idx"].astype("string").fillna("-"),
    )
    expectations = [
        *coverage_expectations(frame, creator_images, ["ok", "no_face"], vision),
        *in_unit_range("score"),
        all_true("box_in_image"),
        all_true("embedding_ok"),
        all_true("embedding_named"),
        gxe.ExpectColumnValuesToBeUnique(column="face_key"),
        gxe.ExpectColumnValuesToBeBetween(column="cluster_id", min_value=0),
    ]
    return check_result(validate_frame(frame, expectations, name="faces"))


def face_embedder_skip(models: ModelRegistry) -> Skip:
    """Why faces are stored without embeddings (and so without identity clusters) now, or None."""
    try:
        models.spec("face_embedder")
    except WeightsMissing:
        return "no weights for the face_embedder: faces are detected but not embedded or clustered", \
            pull_command("face_embedder")
    return None


faces_ran = stage_ran_check(FACES, "faces_embedded", "models", face_embedder_skip,
                            "the face embedder's weights are in the model cache")

