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

#: --pbc modes (trajalign.pbc), in help order
PBC_MODES = ("auto", "whole", "cluster", "nojump", "none")
