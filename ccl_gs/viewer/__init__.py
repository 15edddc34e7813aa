"""Interactive viewer of trained runs in the browser (viser): fly through, query, see the heat map, export.

``python -m ccl_gs.viewer --field-dir DIR`` (a semantic field or LERF run) or
``--run DIR`` (an RGB-only run). :mod:`ccl_gs.viewer.camera` converts the
browser's camera, :mod:`ccl_gs.viewer.frame` makes a frame through the render /
query mechanism of :mod:`ccl_gs.field.render`, :mod:`ccl_gs.viewer.server`
holds the page and its render loops.
"""
