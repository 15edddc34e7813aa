"""Write a rendered synthetic scene in the real benchmarks' folder layouts, plus exact ground truth.

Layouts (``out`` is a dataset root, like the released benchmark folders):

* ``3dovs``: ``out/3dovs/<scene>/`` with ``images/00.png ...``,
  ``poses_bounds.npy`` (LLFF), ``sparse/0/*.txt`` (COLMAP text model with a
  sparse point cloud sampled from the ground-truth surfaces),
  ``segmentations/classes.txt`` and ``segmentations/<view>/<class>.png``
  ('L', 255 = class) for every class of the scene in each evaluated view.
* ``lerf``: ``out/lerf_ovs/<scene>/`` with ``images/frame_00001.jpg ...``,
  ``transforms.json`` (nerfstudio, OpenGL camera-to-world, PINHOLE) and
  ``sparse_pc.ply``; labels in the LangSplat format at
  ``out/lerf_ovs/label/<scene>/frame_XXXXX.json`` for the evaluated views
  (object classes only; one polygon per connected piece, same category).

Both also get ``gt/<image_stem>.npz`` (``instance``, ``part``, ``subpart``,
``class_id`` int32 ``[H, W]``, ``depth`` float32 ``[H, W]``) and
``gt/meta.json`` (names, hierarchy, objects, views, cameras). Every file is
written atomically; ``.npz`` files carry fixed zip timestamps so the same
scene always gives the same bytes.
"""

from __future__ import annotations

import io
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from ccl_gs.data.scene import Camera, Scene, split_views
from ccl_gs.data.synthetic.generator import SyntheticScene
from ccl_gs.io.artifacts import atomic_write_bytes, save_npz_atomic, to_jsonable, write_json

GT_FORMAT_VERSION = 1
LAYOUT_DIRS = {"3dovs": "3dovs", "lerf": "lerf_ovs"}
"""Dataset folder under ``out`` per layout."""


@dataclass
class OutputConfig:
    """Where and how to write a generated scene."""

    out: Path = field(metadata={"help": "Dataset root; scenes go to OUT/3dovs/<name> and/or OUT/lerf_ovs/<name>."})
    layout: Literal["3dovs", "lerf", "both"] = field(default="both", metadata={"help": "Benchmark layout(s) to write."})
    name: str | None = field(default=None, metadata={"help": "Scene folder name; None = 'synthetic_s<seed>'."})
    label_views: Literal["heldout", "spaced"] = field(
        default="heldout",
        metadata={
            "help": "Which views get benchmark labels (3D-OVS segmentations, LERF-OVS polygons): 'heldout' = the "
            "views the every-8th split rule holds out (0, 8, 16, ...), so labels measure unseen views; 'spaced' = "
            "--eval-views evenly spaced views."
        },
    )
    eval_views: int = field(
        default=4,
        metadata={"help": "Number of labelled views with --label-views spaced; at most --views."},
    )
    points: int = field(default=4000, metadata={"help": "Sparse points sampled from the surfaces (COLMAP / PLY point cloud)."})
    lerf_image_format: Literal["jpg", "png"] = field(default="jpg", metadata={"help": "Image format of the LERF layout."})
    jpeg_quality: int = field(default=95, metadata={"help": "JPEG quality of LERF images."})
    simulate: bool = field(default=True, metadata={"help": "Also write simulated 2D masks and tracks (see --sim.* options)."})

    def validate(self, n_views: int) -> None:
        if self.eval_views < 0:
            raise ValueError(f"--eval-views must be >= 0, got {self.eval_views}")
        if self.points < 0:
            raise ValueError(f"--points must be >= 0, got {self.points}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"--jpeg-quality must be in 1..100, got {self.jpeg_quality}")
        if self.name is not None and (not self.name or "/" in self.name or self.name in (".", "..", "label")):
            raise ValueError(f"--name '{self.name}' is not a valid scene folder name")


def eval_view_indices(n_views: int, count: int) -> list[int]:
    """``min(count, n_views)`` evenly spaced view indices out of ``n_views``."""
    count = min(count, n_views)
    if count <= 0:
        return []
    return sorted({min(n_views - 1, int((i + 0.5) * n_views / count)) for i in range(count)})


def image_stems(layout: str, n_views: int) -> list[str]:
    """Image file stems per view: ``00, 01, ...`` (3dovs) or ``frame_00001, ...`` (lerf)."""
    if layout == "3dovs":
        width = max(2, len(str(n_views - 1)))
        return [f"{i:0{width}d}" for i in range(n_views)]
    return [f"frame_{i + 1:05d}" for i in range(n_views)]


def _image_bytes(rgb: np.ndarray, fmt: str, quality: int = 95) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    im = Image.fromarray(rgb)
    if fmt == "png":
        im.save(buf, format="PNG")
    else:
        im.save(buf, format="JPEG", quality=quality, subsampling=0)
    return buf.getvalue()


def _mask_png(mask: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(np.where(mask, 255, 0).astype(np.uint8), mode="L").save(buf, format="PNG")
    return buf.getvalue()


def sample_points(scene: SyntheticScene, renders: list[dict], count: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Surface points ``[P, 3]`` float32 and colours ``[P, 3]`` uint8, back-projected from the depth maps."""
    if count == 0:
        return np.zeros((0, 3), np.float32), np.zeros((0, 3), np.uint8)
    rng = np.random.default_rng([seed, 7])
    per_view = int(np.ceil(count / len(renders)))
    Kinv = np.linalg.inv(scene.K)
    pts, cols = [], []
    for v, r in enumerate(renders):
        ys, xs = np.nonzero(r["depth"] > 0)
        if len(ys) == 0:
            continue
        pick = rng.choice(len(ys), size=min(per_view, len(ys)), replace=False)
        y, x = ys[pick], xs[pick]
        z = r["depth"][y, x].astype(np.float64)
        cam = (np.stack([x + 0.5, y + 0.5, np.ones_like(z)], -1) @ Kinv.T) * z[:, None]
        c2w = np.linalg.inv(scene.viewmats[v])
        pts.append(cam @ c2w[:3, :3].T + c2w[:3, 3])
        cols.append(r["rgb"][y, x])
    P = np.concatenate(pts)[:count].astype(np.float32)
    C = np.concatenate(cols)[:count].astype(np.uint8)
    return P, C


def _gt_meta(scene: SyntheticScene, stems: list[str], image_names: list[str], eval_views: list[int], layout: str) -> dict:
    return {
        "format_version": GT_FORMAT_VERSION,
        "layout": layout,
        "width": scene.width,
        "height": scene.height,
        "classes": scene.classes,
        "class_id_note": "class_id = 1 + index into classes; 0 = no surface (all id maps use 0 for none)",
        "stuff_classes": [d["class"] for d in scene.instances if d["kind"] == "stuff"],
        "instances": scene.instances,
        "parts": scene.parts,
        "subparts": scene.subparts,
        "views": [
            {"stem": s, "image": f"images/{n}", "viewmat": scene.viewmats[i], "K": scene.K}
            for i, (s, n) in enumerate(zip(stems, image_names))
        ],
        "eval_views": eval_views,
        "generator": to_jsonable(scene.config),
    }


def _write_gt(root: Path, scene: SyntheticScene, renders: list[dict], stems: list[str], names: list[str],
              eval_views: list[int], layout: str) -> None:
    for stem, r in zip(stems, renders):
        save_npz_atomic(root / "gt" / f"{stem}.npz", compress=True, **{k: r[k] for k in ("instance", "part", "subpart", "class_id", "depth")})
    write_json(root / "gt" / "meta.json", _gt_meta(scene, stems, names, eval_views, layout))


def _as_scene(root: Path, scene: SyntheticScene, names: list[str], points, colors, fmt: str) -> Scene:
    K = scene.K
    cam = Camera(scene.width, scene.height, float(K[0, 0]), float(K[1, 1]), float(K[0, 2]), float(K[1, 2]))
    return Scene(
        name=root.name,
        root=root,
        image_paths=[root / "images" / n for n in names],
        cameras=[cam] * scene.n_views,
        viewmats=scene.viewmats.copy(),
        points=points,
        point_colors=colors,
        format=fmt,
    )


def llff_poses_bounds(scene: SyntheticScene, renders: list[dict]) -> np.ndarray:
    """``[V, 17]`` LLFF rows: 3x5 ``[down, right, back, t, hwf]`` flattened, then near/far depth bounds."""
    rows = []
    for v, r in enumerate(renders):
        c2w = np.linalg.inv(scene.viewmats[v])
        hwf = np.array([scene.height, scene.width, scene.K[0, 0]])
        P = np.stack([c2w[:3, 1], c2w[:3, 0], -c2w[:3, 2], c2w[:3, 3], hwf], 1)  # [3, 5]
        d = r["depth"][r["depth"] > 0]
        near, far = (float(d.min()) * 0.9, float(d.max()) * 1.1) if d.size else (0.1, 100.0)
        rows.append(np.concatenate([P.reshape(-1), [near, far]]))
    return np.stack(rows)


def write_3dovs(root: Path, scene: SyntheticScene, renders: list[dict], eval_views: list[int],
                points: tuple[np.ndarray, np.ndarray]) -> None:
    """Write the 3D-OVS (LLFF) layout of a rendered scene into ``root``."""
    from ccl_gs.data.readers.colmap import write_colmap_text

    stems = image_stems("3dovs", scene.n_views)
    names = [f"{s}.png" for s in stems]
    for n, r in zip(names, renders):
        atomic_write_bytes(root / "images" / n, _image_bytes(r["rgb"], "png"))
    buf = io.BytesIO()
    np.save(buf, llff_poses_bounds(scene, renders))
    atomic_write_bytes(root / "poses_bounds.npy", buf.getvalue())
    write_colmap_text(root / "sparse" / "0", _as_scene(root, scene, names, *points, "llff"), names)
    seg = root / "segmentations"
    from ccl_gs.io.artifacts import atomic_write_text

    atomic_write_text(seg / "classes.txt", "\n".join(scene.classes) + "\n")
    for v in eval_views:
        cmap = renders[v]["class_id"]
        for i, c in enumerate(scene.classes):
            atomic_write_bytes(seg / stems[v] / f"{c}.png", _mask_png(cmap == i + 1))
    _write_gt(root, scene, renders, stems, names, eval_views, "3dovs")


def mask_polygons(mask: np.ndarray, min_area: float = 1.0) -> list[np.ndarray]:
    """Outer contours of a mask's connected pieces as polygons ``[P, 2]`` float (x, y), area >= ``min_area``."""
    import cv2

    contours, _ = cv2.findContours(mask.astype(np.uint8), cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    out = []
    for c in contours:
        poly = c.reshape(-1, 2).astype(np.float64)
        if len(poly) >= 3 and shoelace_area(poly) >= min_area:
            out.append(poly)
    return out


def shoelace_area(poly: np.ndarray) -> float:
    """Area of a simple polygon ``[P, 2]``."""
    x, y = poly[:, 0], poly[:, 1]
    return float(0.5 * abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def lerf_label(scene: SyntheticScene, class_map: np.ndarray, image_name: str) -> dict:
    """One LangSplat-format annotation (``info`` + ``objects``) from a ``[H, W]`` class-id map."""
    objects = []
    for i, c in enumerate(scene.classes):
        if c in [d["class"] for d in scene.instances if d["kind"] == "stuff"]:
            continue
        for poly in mask_polygons(class_map == i + 1):
            objects.append({
                "category": c,
                "group": 1,
                "segmentation": poly.tolist(),
                "area": shoelace_area(poly),
                "layer": float(len(objects) + 1),
                "bbox": [float(poly[:, 0].min()), float(poly[:, 1].min()), float(poly[:, 0].max()), float(poly[:, 1].max())],
                "iscrowd": 0,
                "note": "",
            })
    info = {"name": image_name, "width": scene.width, "height": scene.height, "depth": 3, "note": ""}
    return {"info": info, "objects": objects}


def write_lerf(root: Path, label_dir: Path, scene: SyntheticScene, renders: list[dict], eval_views: list[int],
               points: tuple[np.ndarray, np.ndarray], image_format: str = "jpg", jpeg_quality: int = 95) -> None:
    """Write the LERF-OVS (nerfstudio) layout into ``root`` and its labels into ``label_dir``."""
    from ccl_gs.data.readers.nerfstudio import write_transforms_json

    stems = image_stems("lerf", scene.n_views)
    names = [f"{s}.{image_format}" for s in stems]
    for n, r in zip(names, renders):
        atomic_write_bytes(root / "images" / n, _image_bytes(r["rgb"], image_format, jpeg_quality))
    write_transforms_json(root / "transforms.json", _as_scene(root, scene, names, *points, "nerfstudio"))
    for v in eval_views:
        write_json(label_dir / f"{stems[v]}.json", lerf_label(scene, renders[v]["class_id"], names[v]))
    _write_gt(root, scene, renders, stems, names, eval_views, "lerf")


def write_dataset(scene: SyntheticScene, renders: list[dict], cfg: OutputConfig) -> list[Path]:
    """Write the configured layout(s); returns the scene folders written."""
    cfg.validate(scene.n_views)
    name = cfg.name or f"synthetic_s{scene.config.seed}"
    if cfg.label_views == "heldout":
        ev = split_views(scene.n_views, 8)["test"]
    else:
        ev = eval_view_indices(scene.n_views, cfg.eval_views)
    points = sample_points(scene, renders, cfg.points, scene.config.seed)
    out = Path(cfg.out)
    roots = []
    if cfg.layout in ("3dovs", "both"):
        root = out / LAYOUT_DIRS["3dovs"] / name
        write_3dovs(root, scene, renders, ev, points)
        roots.append(root)
    if cfg.layout in ("lerf", "both"):
        root = out / LAYOUT_DIRS["lerf"] / name
        write_lerf(root, out / LAYOUT_DIRS["lerf"] / "label" / name, scene, renders, ev, points,
                   cfg.lerf_image_format, cfg.jpeg_quality)
        roots.append(root)
    return roots
