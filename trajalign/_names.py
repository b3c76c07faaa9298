"""Names shared by the diagnostics and their commands, in a module without imports so
that ``trajalign --help`` stays light."""

#: registry names; ``coords`` methods also take part in the sensitivity and overlay plots
COORD_METHODS = ("none", "center-com", "center-point", "kabsch", "principal", "point")
FEATURE_METHODS = ("distances", "angles", "dihedrals", "eigvals")
METHOD_NAMES = COORD_METHODS + FEATURE_METHODS

#: transformations the check applies, in table order
TRANSFORMATIONS = (
    "translation",
    "rotation",
    "translation per frame",
    "rotation per frame",
    "reflection",
    "permutation",
)

#: the check's transformation for inputs with a periodic repair: every atom moved by
#: random lattice vectors before the repair (trajalign.diagnostics.check_periodic_images)
PERIODIC_IMAGES = "periodic images"

#: check's default --frames: the first 100 frames of the selection
CHECK_FRAMES = 100

#: check's default --atoms: methods whose cost grows faster than the point count
#: (distances over all pairs, the inverse-distance spectrum, O(N^3) per frame) run on at
#: most this many points, evenly spaced through the selection; with CHECK_FRAMES it keeps
#: ``check`` of every method on a 3341-atom protein under a minute on two cores
MAX_POINTS = 200

#: --pbc modes (trajalign.pbc), in help order
PBC_MODES = ("auto", "whole", "cluster", "nojump", "none")

#: HDF5 paths of the output layout (CONTRACT.md) that more than one module reads or writes
POSITION = "particles/trajectory/position/value"
FRAME_INDEX = "trajalign/frames/index"
FRAME_TIME = "trajalign/frames/time"
TRANSLATION = "trajalign/alignment/translation"
RESUME = "trajalign/resume"
DIAGNOSTICS = "trajalign/diagnostics"
