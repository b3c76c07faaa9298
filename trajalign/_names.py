"""Names shared by the diagnostics and their commands, in a module without imports so
that ``trajalign --help`` stays light."""

#: registry names; ``coords`` methods also take part in the sensitivity and overlay plots
COORD_METHODS = ("none", "center-com", "center-point", "kabsch", "principal", "point")
FEATURE_METHODS = ("distances", "angles", "dihedrals", "eigvals")
#: protein features of MDAnalysis inputs, checked when --method names them
PROTEIN_METHODS = ("phi", "psi", "omega", "chi1", "chi2", "chi3", "chi4", "chi5", "mindist")
METHOD_NAMES = COORD_METHODS + FEATURE_METHODS + PROTEIN_METHODS

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

#: the jump rule (trajalign.diagnostics.jump_threshold): flag a frame whose consecutive
#: RMSD exceeds the running median by more than JUMP_K robust standard deviations
#: (1.4826 MAD) over a centred window of JUMP_WINDOW frames
JUMP_K = 10.0
JUMP_WINDOW = 51
#: the robust spread is floored at this fraction of the running median, so that an almost
#: constant series (a rigid body, a perfectly smooth alignment) does not flag rounding noise
JUMP_FLOOR = 0.05

#: methods of ``trajalign rotate`` (jump diagnostics)
ROTATE_METHODS = ("kabsch", "principal", "point")

#: the chapter's perturb_paths: 16 steps up to 0.2 length units along an axis
PERTURB_STEPS = 16
PERTURB_AMOUNT = 0.2
#: perturbation directions, by axis index
AXES = ("x", "y", "z")
#: diagnose perturbs every point for the sensitivity matrix up to this many; else an
#: even subset of this many
MAX_PERTURBED = 48

__all__ = [
    "AXES",
    "CHECK_FRAMES",
    "COORD_METHODS",
    "DIAGNOSTICS",
    "FEATURE_METHODS",
    "FRAME_INDEX",
    "FRAME_TIME",
    "JUMP_FLOOR",
    "JUMP_K",
    "JUMP_WINDOW",
    "MAX_PERTURBED",
    "MAX_POINTS",
    "METHOD_NAMES",
    "PBC_MODES",
    "PERIODIC_IMAGES",
    "PERTURB_AMOUNT",
    "PERTURB_STEPS",
    "PROTEIN_METHODS",
    "POSITION",
    "RESUME",
    "ROTATE_METHODS",
    "TRANSFORMATIONS",
    "TRANSLATION",
]
