"""Reading the exact ground truth a synthetic scene folder carries (``gt/meta.json``, ``gt/<stem>.npz``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import numpy as np

from ccl_gs.io.artifacts import ArtifactError, load_npz, read_json

GT_KEYS = ("instance", "part", "subpart", "class_id", "depth")
LABEL_KEYS = ("subpart", "part", "instance")
"""Id map per granularity index 0, 1, 2 (subpart, part, whole)."""


class GroundTruth:
    """The ground truth of one written synthetic scene.

    Args:
        scene_root: a scene folder written by :mod:`ccl_gs.data.synthetic` (holds ``gt/``).
    """

    def __init__(self, scene_root: str | Path) -> None:
        self.root = Path(scene_root)
        meta_path = self.root / "gt" / "meta.json"
        if not meta_path.is_file():
            raise ArtifactError(f"no synthetic ground truth at {meta_path} (generate with python -m ccl_gs.data.synthetic)")
        self.meta: dict = read_json(meta_path)
        self.meta_path = meta_path
        self.stems: list[str] = [v["stem"] for v in self.meta["views"]]
        self.classes: list[str] = list(self.meta["classes"])
        self.width: int = int(self.meta["width"])
        self.height: int = int(self.meta["height"])
        self._load = lru_cache(maxsize=64)(self._read)

    def __len__(self) -> int:
        return len(self.stems)

    def _read(self, view: int) -> dict[str, np.ndarray]:
        return load_npz(self.root / "gt" / f"{self.stems[view]}.npz", GT_KEYS)

    def view(self, view: int) -> dict[str, np.ndarray]:
        """Maps of view ``view``: ``instance``, ``part``, ``subpart``, ``class_id`` ``[H, W]`` int32; ``depth`` ``[H, W]`` float32."""
        if not 0 <= view < len(self.stems):
            raise IndexError(f"view {view} out of range: {self.root} has {len(self.stems)} views")
        return self._load(view)

    def view_of_stem(self, stem: str) -> int:
        """Index of the view whose image file stem is ``stem``."""
        try:
            return self.stems.index(stem)
        except ValueError:
            raise KeyError(f"{self.root}: no view with image stem '{stem}'") from None

    @property
    def stuff_instances(self) -> list[int]:
        """Instance ids of background stuff (floor, wall)."""
        return [d["id"] for d in self.meta["instances"] if d["kind"] == "stuff"]

    @property
    def object_instances(self) -> list[int]:
        return [d["id"] for d in self.meta["instances"] if d["kind"] == "object"]

    def instance_class(self) -> np.ndarray:
        """``[max_instance + 1]`` int32 lookup: instance id -> class id (0 for 0)."""
        inst = self.meta["instances"]
        out = np.zeros(max(d["id"] for d in inst) + 1, np.int32)
        for d in inst:
            out[d["id"]] = d["class_id"]
        return out

    def regions(self, view: int, granularity: int, min_area: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """Exact region masks of one view at one granularity.

        Subpart (0) and part (1) regions come from objects only; whole (2)
        regions are objects plus the background stuff (floor, wall).

        Returns:
            masks ``[R, H, W]`` bool and their ids ``[R]`` int32 (ascending), regions with at least ``min_area`` pixels.
        """
        g = self.view(view)
        ids = g[LABEL_KEYS[granularity]]
        stuff = np.isin(g["instance"], self.stuff_instances)
        if granularity < 2:
            ids = np.where(stuff, 0, ids)
        counts = np.bincount(ids.ravel())
        keep = np.nonzero(counts >= max(min_area, 1))[0]
        keep = keep[keep > 0].astype(np.int32)
        return ids[None] == keep[:, None, None], keep
