"""The interactive viewer: a local web page (viser) over a trained run.

:func:`serve` loads a run (:func:`ccl_gs.field.render.load_viewable_run`),
starts a viser server and keeps, per connected browser, a render loop
(:class:`ClientLoop`): while the camera moves it renders at a resolution
chosen so frames keep up with ``--target-fps``, and once the camera has been
still for ``--still-seconds`` it renders again at ``--max-resolution``. The
frames are made by :func:`ccl_gs.viewer.frame.render_frame` and sent as the
page's background image; the training cameras are drawn as frustums, and
clicking one moves the browser's camera to it.

Nothing runs at import: the server and its threads exist only inside
:func:`serve` / :class:`Viewer`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Callable

import numpy as np

from ccl_gs.field.language import QueryError
from ccl_gs.field.render import QueryModel
from ccl_gs.query import RELEVANCY
from ccl_gs.viewer.camera import (
    Pose,
    look_at_point,
    moving_resolution,
    pose_from_view,
    render_item,
    scene_up,
    viewmat_from_pose,
)
from ccl_gs.viewer.frame import (
    AUTO_LEVEL,
    DISPLAYS,
    DisplayState,
    QueryEncoder,
    export_selection,
    has_language,
    level_names,
    parse_queries,
    render_frame,
)


@dataclass
class ViewerConfig:
    """Options of ``python -m ccl_gs.viewer``."""

    field_dir: Path | None = field(
        default=None, metadata={"help": "A trained run with language: a semantic field folder or a LERF run folder."}
    )
    run: Path | None = field(default=None, metadata={"help": "An RGB-only Gaussian run of train.py (no queries)."})
    host: str = field(default="127.0.0.1", metadata={"help": "Address to serve on (0.0.0.0 = every interface)."})
    port: int = field(default=0, metadata={"help": "Port to serve on (0 = a free one)."})
    queries: list[str] = field(default_factory=list, metadata={"help": "Queries to start with (the page can change them)."})
    relevancy: str = field(default="canonical", metadata={"help": "Relevancy form to start with: canonical | softmax."})
    threshold: float = field(
        default=0.4, metadata={"help": "Selection threshold to start with, on the normalized relevancy (as render.py)."}
    )
    out: Path | None = field(
        default=None, metadata={"help": "Folder of exported selections; None = viewer/selection beside the run folder."}
    )
    max_resolution: int = field(default=512, metadata={"help": "Longer side of a frame once the camera is still (pixels)."})
    min_resolution: int = field(default=64, metadata={"help": "Smallest longer side of a frame while the camera moves."})
    target_fps: float = field(default=8.0, metadata={"help": "While the camera moves, lower the resolution to about this frame rate."})
    still_seconds: float = field(default=0.25, metadata={"help": "The camera counts as still after this many seconds without a move."})
    jpeg_quality: int = field(default=90, metadata={"help": "JPEG quality of the frames sent to the page (1-100)."})
    start_view: int = field(default=0, metadata={"help": "The page starts at this training camera (an index into the training views)."})
    lerf_scales: int = field(default=30, metadata={"help": "LERF runs: scales searched in [0, 1.5] per query and frame."})
    lerf_search_stride: int = field(
        default=1, metadata={"help": "LERF runs: the scale search looks at every n-th pixel row and column (1 = all, as LERF)."}
    )

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"--port must be in 0..65535, got {self.port}")
        if not 16 <= self.min_resolution <= self.max_resolution:
            raise ValueError(
                f"need 16 <= --min-resolution <= --max-resolution, got {self.min_resolution} and {self.max_resolution}"
            )
        if self.target_fps <= 0 or self.still_seconds <= 0:
            raise ValueError(f"--target-fps and --still-seconds must be > 0, got {self.target_fps}, {self.still_seconds}")
        if not 1 <= self.jpeg_quality <= 100:
            raise ValueError(f"--jpeg-quality must be in 1..100, got {self.jpeg_quality}")
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"--threshold must be in [0, 1], got {self.threshold}")
        if self.relevancy not in RELEVANCY:
            raise ValueError(f"--relevancy must be one of {', '.join(sorted(RELEVANCY))}, got '{self.relevancy}'")
        if self.start_view < 0:
            raise ValueError(f"--start-view must be >= 0, got {self.start_view}")

    def run_folder(self) -> Path:
        """The folder of the run being viewed."""
        return Path(self.field_dir if self.field_dir is not None else self.run)

    def selection_dir(self) -> Path:
        """Where "Export PLY" writes."""
        return Path(self.out) if self.out is not None else self.run_folder().resolve().parent / "viewer" / "selection"


def load_model(cfg: ViewerConfig, device) -> QueryModel:
    """The run of ``cfg`` as a :class:`QueryModel` (one-line errors, as render.py)."""
    from ccl_gs.field.render import RenderConfig, load_viewable_run

    rcfg = RenderConfig(lerf_scales=cfg.lerf_scales, lerf_search_stride=cfg.lerf_search_stride)
    return load_viewable_run(cfg.field_dir, cfg.run, device, rcfg)


@dataclass
class TrainingCamera:
    """A training view as the page shows it."""

    index: int
    """View index in the scene."""
    pose: Pose
    aspect: float
    depth: float
    """Median depth of the scene's points in front of it (where the page orbits after a jump)."""


def training_cameras(model: QueryModel) -> list[TrainingCamera]:
    """The training views of a run (all views when it has no training split) as the page shows them."""
    ds = model.dataset("train")
    if len(ds) == 0:
        ds = model.dataset("all")
    points = getattr(model.scene, "points", None)
    out = []
    for i in range(len(ds)):
        item = ds[i]
        H, W = int(item["height"]), int(item["width"])
        vm = item["viewmat"].cpu().numpy().astype(np.float64)
        pose = pose_from_view(vm, item["K"].cpu().numpy(), H)
        out.append(TrainingCamera(int(item["index"]), pose, W / H, _median_depth(vm, points)))
    return out


def _median_depth(viewmat: np.ndarray, points: np.ndarray | None) -> float:
    """Median camera-space depth of ``points [P, 3]`` in front of the camera (1.0 without points)."""
    if points is None or len(points) == 0:
        return 1.0
    z = (np.asarray(points, np.float64) @ viewmat[:3, :3].T + viewmat[:3, 3])[:, 2]
    z = z[z > 1e-6]
    return float(np.median(z)) if len(z) else 1.0


def frustum_scale(cams: list[TrainingCamera]) -> float:
    """Frustum size: 0.3 x the median distance from a camera to its nearest neighbour (0.1 x the depth for one)."""
    if len(cams) < 2:
        return 0.1 * (cams[0].depth if cams else 1.0)
    c = np.stack([t.pose.position for t in cams])
    d = np.linalg.norm(c[:, None] - c[None], axis=-1)
    np.fill_diagonal(d, np.inf)
    nn = float(np.median(d.min(1)))
    return 0.3 * nn if nn > 0 else 0.1 * float(np.median([t.depth for t in cams]))


class ClientLoop:
    """The render loop of one browser: low resolution while its camera moves, full resolution once still."""

    def __init__(self, viewer: "Viewer", client) -> None:
        self.viewer = viewer
        self.client = client
        self.cfg = viewer.cfg
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._last_move = 0.0
        self._refine = False
        self._side = self.cfg.max_resolution
        self._seconds = 0.0
        client.camera.on_update(self._moved)
        self._thread = threading.Thread(target=self._run, name=f"viewer-client-{client.client_id}", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    def _moved(self, _camera) -> None:
        self._last_move = time.monotonic()
        self._wake.set()

    def changed(self) -> None:
        """The page's settings changed: render again (at full resolution when the camera is still)."""
        self._wake.set()

    def _full_side(self) -> int:
        cam = self.client.camera
        canvas = max(int(cam.image_width), int(cam.image_height))
        return min(self.cfg.max_resolution, canvas) if canvas > 0 else self.cfg.max_resolution

    def _run(self) -> None:
        still = self.cfg.still_seconds
        while not self._stop.is_set():
            woke = self._wake.wait(timeout=still / 2)
            if self._stop.is_set():
                return
            moving = time.monotonic() - self._last_move < still
            if woke:
                self._wake.clear()
            elif not (self._refine and not moving):
                continue
            if moving:
                side = moving_resolution(self._side, self._seconds, 1.0 / self.cfg.target_fps,
                                         self.cfg.min_resolution, self._full_side())
            else:
                side = self._full_side()
            self._refine = moving
            self._render(side)

    def _render(self, side: int) -> None:
        cam = self.client.camera
        try:
            pose = Pose(np.asarray(cam.wxyz), np.asarray(cam.position), float(cam.fov))
            item = render_item(pose, float(cam.aspect), side)
            frame = self.viewer.frame(item)
        except (QueryError, ValueError, RuntimeError, KeyError) as e:
            self.viewer.set_status(f"error: {e}")
            return
        self._side, self._seconds = side, frame.seconds
        if self._stop.is_set():  # the page closed while the frame rendered
            return
        self.client.scene.set_background_image(frame.image, format="jpeg", jpeg_quality=self.cfg.jpeg_quality)
        self.viewer.report(frame)


class Viewer:
    """The page of one run: GUI, training-camera frustums and one :class:`ClientLoop` per browser."""

    def __init__(self, model: QueryModel, cfg: ViewerConfig, server) -> None:
        self.model = model
        self.cfg = cfg
        self.server = server
        self.encoder = QueryEncoder(model)
        self.language = has_language(model)
        if self.language:
            self.encoder.load()  # a missing or mismatched text encoder stops the start, not the first query
        self._lock = threading.Lock()
        """One frame (or export) at a time goes through the model."""
        self._loops: dict[int, ClientLoop] = {}
        self._loops_lock = threading.Lock()
        self.state = DisplayState(
            queries=parse_queries(";".join(cfg.queries)), relevancy=cfg.relevancy, threshold=cfg.threshold,
            display="heat map" if self.language else "rgb",
        )
        self.cameras = training_cameras(model)
        if cfg.start_view >= len(self.cameras):
            raise QueryError(f"--start-view {cfg.start_view} is out of range: the run has {len(self.cameras)} training views")
        self._scene_setup()
        self._gui_setup()
        server.on_client_connect(self._connect)
        server.on_client_disconnect(self._disconnect)

    # ------------------------------------------------------------- scene
    def _scene_setup(self) -> None:
        up = scene_up(np.stack([_c2w(c.pose) for c in self.cameras]))
        self.server.scene.set_up_direction(tuple(float(v) for v in up))
        start = self.cameras[self.cfg.start_view]
        ic = self.server.initial_camera
        ic.up = tuple(float(v) for v in up)
        ic.position = tuple(float(v) for v in start.pose.position)
        ic.look_at = tuple(float(v) for v in look_at_point(start.pose, start.depth))
        ic.fov = float(start.pose.fov_y)
        scale = frustum_scale(self.cameras)
        self.frustums = []
        for k, cam in enumerate(self.cameras):
            h = self.server.scene.add_camera_frustum(
                f"/training_cameras/{cam.index:05d}", fov=cam.pose.fov_y, aspect=cam.aspect, scale=scale,
                thickness=2.0, thickness_units="screen", wxyz=cam.pose.wxyz, position=cam.pose.position,
                color=(60, 120, 230),
            )
            h.on_click(self._jump_callback(k))
            self.frustums.append(h)

    def _jump_callback(self, k: int) -> Callable[[Any], None]:
        def jump(event) -> None:
            self.jump(event.client, k)

        return jump

    def jump(self, client, k: int) -> None:
        """Move ``client``'s camera to training camera ``k`` (position, orientation, field of view)."""
        cam = self.cameras[k]
        c2w = _c2w(cam.pose)
        with client.atomic():
            client.camera.position = cam.pose.position
            client.camera.look_at = look_at_point(cam.pose, cam.depth)
            client.camera.up_direction = -c2w[:3, 1]
            client.camera.fov = cam.pose.fov_y
        self.set_status(f"at training view {cam.index}")

    # --------------------------------------------------------------- GUI
    def _gui_setup(self) -> None:
        gui = self.server.gui
        m = self.model
        kind = type(m).__name__
        n_views = len(self.cameras)
        gui.add_markdown(f"**{m.scene.name}** - {kind}, {n_views} training views (click a frustum to jump to it)")
        self.status = gui.add_markdown("starting")
        show_cams = gui.add_checkbox("Training cameras", True, hint="Show the training cameras (click one to jump to it)")

        @show_cams.on_update
        def _(_event) -> None:
            for h in self.frustums:
                h.visible = bool(show_cams.value)

        if not self.language:
            gui.add_markdown("An RGB-only run: no language, no queries.")
            return
        with gui.add_folder("Query"):
            self.query_box = gui.add_text("Queries", ";".join(self.state.queries),
                                          hint="Text queries, several separated by ';'")
            self.display = gui.add_dropdown("Show", DISPLAYS, initial_value=self.state.display,
                                            hint="Heat map over the colour, the colour alone, or the language features")
            self.shown = gui.add_dropdown("Query shown", self.state.queries or ("-",),
                                          hint="Which query the heat map and the selection show")
            names = level_names(m.n_levels)
            self.level = gui.add_dropdown("Level", (AUTO_LEVEL,) + (names if len(names) > 1 else ()),
                                          initial_value=AUTO_LEVEL, disabled=len(names) < 2,
                                          hint="Language level; auto = the level whose map peaks highest")
            self.relevancy = gui.add_dropdown("Relevancy", tuple(sorted(RELEVANCY)), initial_value=self.state.relevancy,
                                              hint="canonical: against 'object', 'things', 'stuff', 'texture'; "
                                                   "softmax: over the query set (needs two or more queries)")
            self.threshold = gui.add_slider("Threshold", min=0.0, max=1.0, step=0.01, initial_value=self.state.threshold,
                                            hint="Selection threshold on the normalized relevancy")
            self.select = gui.add_checkbox("Select", False, hint="Highlight what the PLY export holds")
            self.export = gui.add_button("Export selection (PLY)", hint=f"Writes into {self.cfg.selection_dir()}")
            self.export_info = gui.add_markdown("")
        for h in (self.query_box, self.display, self.shown, self.level, self.relevancy, self.threshold, self.select):
            h.on_update(self._gui_changed)
        self.export.on_click(self._export)

    def _gui_changed(self, _event) -> None:
        queries = parse_queries(self.query_box.value)
        options = queries or ("-",)
        if tuple(self.shown.options) != options:
            self.shown.options = options
        shown = options.index(self.shown.value) if self.shown.value in options else 0
        self.state = replace(
            self.state, queries=queries, shown=shown, display=self.display.value, level=self.level.value,
            relevancy=self.relevancy.value, threshold=float(self.threshold.value), select=bool(self.select.value),
        )
        self.redraw()

    def _export(self, event) -> None:
        self.export_info.content = f"writing into {self.cfg.selection_dir()} ..."
        try:
            with self._lock:
                res = export_selection(self.model, self.encoder, self.state, self.cfg.selection_dir())
        except (QueryError, ValueError, RuntimeError, OSError) as e:
            self.export_info.content = f"error: {e}"
            return
        lines = [f"- {q}: {n} selected -> `{res['paths'][q]}`" if n else f"- {q}: nothing selected, no file"
                 for q, n in res["counts"].items()]
        self.export_info.content = "\n".join(lines)
        if event.client is not None:
            event.client.add_notification("Selection written", "\n".join(
                str(p) for p in res["paths"].values() if p is not None) or "nothing selected", auto_close_seconds=8.0)

    # ----------------------------------------------------------- clients
    def _connect(self, client) -> None:
        loop = ClientLoop(self, client)
        with self._loops_lock:
            self._loops[client.client_id] = loop
        loop.start()
        loop.changed()

    def _disconnect(self, client) -> None:
        with self._loops_lock:
            loop = self._loops.pop(client.client_id, None)
        if loop is not None:
            loop.stop()

    def redraw(self) -> None:
        """Render every page again (settings changed)."""
        with self._loops_lock:
            loops = list(self._loops.values())
        for loop in loops:
            loop.changed()

    def frame(self, item: dict[str, Any]):
        """One frame of the current settings (serialized: the model serves one frame at a time)."""
        with self._lock:
            return render_frame(self.model, self.encoder, item, self.state)

    def report(self, frame) -> None:
        h, w = frame.image.shape[:2]
        txt = f"frame {w}x{h} in {1000 * frame.seconds:.0f} ms"
        if frame.level is not None:
            txt += f" - level {frame.level}, peak relevancy {frame.peak:.2f}"
        self.set_status(txt)

    def set_status(self, text: str) -> None:
        self.status.content = text

    def close(self) -> None:
        """Stop the render loops and the server."""
        with self._loops_lock:
            loops = list(self._loops.values())
            self._loops.clear()
        for loop in loops:
            loop.stop()
        for loop in loops:
            loop.join(5.0)
        self.server.stop()


def _c2w(pose: Pose) -> np.ndarray:
    """Camera-to-world ``[4, 4]`` of a pose."""
    return np.linalg.inv(viewmat_from_pose(pose.wxyz, pose.position))


def start(cfg: ViewerConfig, model: QueryModel) -> tuple[Viewer, str]:
    """Start the server for a loaded run; returns the viewer and its URL.

    Raises:
        OSError: a chosen ``--port`` is taken.
    """
    import viser

    server = viser.ViserServer(host=cfg.host, port=cfg.port, verbose=False)
    port = server.get_port()
    if cfg.port and port != cfg.port:
        server.stop()
        raise OSError(f"port {cfg.port} on {cfg.host} is in use; choose another --port (or 0 for a free one)")
    try:
        viewer = Viewer(model, cfg, server)
    except BaseException:
        server.stop()
        raise
    return viewer, f"http://{cfg.host}:{port}"
