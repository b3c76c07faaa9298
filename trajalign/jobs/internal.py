"""``trajalign internal``: distances, angles, dihedrals and their featurisations per frame.

Writes no coordinates: every feature goes to ``/trajalign/features/<name>/value`` with its
index tuples in ``/trajalign/features/<name>/indices`` (``/trajalign/atom_indices``
numbering, i.e. positions in the selection).
"""

from __future__ import annotations

import os

import numpy as np

from .._validate import check_finite_frames
from ..box import as_box, kernel_box_table, pad3
from ..errors import InputError, ParameterError, SelectionError
from ..features.labels import KINDS, atom_texts, last_axis_labels, tuple_labels
from ..internal import (
    all_pairs,
    angles_from_bonds,
    angles_raw,
    chain_tuples,
    check_eigvals,
    check_undefined,
    default_gamma,
    dihedrals_from_bonds,
    dihedrals_raw,
    distances_raw,
    eigvals_raw,
    nan_per_row,
    rbf_centers,
    read_tuples,
)
from ..pipeline import BlockResult, Job
from .protein import (
    PROTEIN_FEATURES,
    TORSION_FEATURES,
    check_contact_options,
    mindist_setup,
    protein_topology,
    protein_tuples,
    torsion_tuples,
)

__all__ = [
    "DIHEDRAL_ENCODINGS",
    "FEATURES",
    "GENERIC_FEATURES",
    "PAIR_KEYWORDS",
    "ROOT",
    "TRANSFORMS",
    "bonded_tuples",
    "check_tuples",
    "InternalJob",
]

GENERIC_FEATURES = ("distances", "angles", "dihedrals", "eigvals")
FEATURES = GENERIC_FEATURES + PROTEIN_FEATURES
TRANSFORMS = ("none", "inverse", "rbf", "bins", "repeat")
PAIR_KEYWORDS = ("bonds", "chain", "all")
DIHEDRAL_ENCODINGS = ("angle", "sincos")
_WIDTH = {"distances": 2, "angles": 3, "dihedrals": 4}
_FEATURE_OF_WIDTH = {2: "distances", 3: "angles", 4: "dihedrals"}
ROOT = "trajalign/features"
_NAN_OPTION = "--undefined nan"
# one frame's features must fit comfortably in memory (all pairs of 23 000 points do not)
_MAX_FRAME_BYTES = 2**31
_CAN_BE_UNDEFINED = ("angles", "dihedrals", "distances_inverse", "eigvals", *TORSION_FEATURES)
_BACKBONE = ("phi", "psi", "omega")


def _split(value, name: str, allowed: tuple[str, ...]) -> list[str]:
    """'a,b' or ['a', 'b'] -> checked list without duplicates."""
    if value is None:
        return []
    items = value.split(",") if isinstance(value, str) else list(value)
    out: list[str] = []
    for item in (i.strip().lower() for i in items):
        if not item:
            continue
        if item not in allowed:
            raise ParameterError(
                f"unknown {name} {item!r}", f"choose from {', '.join(allowed)} (comma separated)"
            )
        if item not in out:
            out.append(item)
    return out


def _restrict(tuples: np.ndarray, atom_indices: np.ndarray) -> np.ndarray:
    """Tuples (source atom numbering) whose atoms are all selected, renumbered to
    positions in ``atom_indices``."""
    t = np.asarray(tuples, dtype=np.int64)
    if t.size == 0:
        return t.reshape(0, t.shape[-1] if t.ndim == 2 else 0)
    pos = np.full(int(max(t.max(), atom_indices.max())) + 1, -1, dtype=np.int64)
    pos[atom_indices] = np.arange(atom_indices.size)
    mapped = pos[t]
    return mapped[np.all(mapped >= 0, axis=1)]


def bonded_tuples(source) -> dict[str, np.ndarray] | None:
    """The input's own bonds, angles and dihedrals within the selection.

    Angles and dihedrals come from the topology (``Universe.angles``/``dihedrals``) where
    it lists them, else from the bond graph (:func:`~trajalign.internal.angles_from_bonds`,
    :func:`~trajalign.internal.dihedrals_from_bonds`).

    Parameters
    ----------
    source : Source
        An open source (:func:`trajalign.io.open_source`).

    Returns
    -------
    dict or None
        ``{"distances": (B, 2), "angles": (A, 3), "dihedrals": (Q, 4)}`` int64 arrays in
        selection numbering (positions in ``source.atom_indices``); None where the
        selection has no bonds.
    """
    if source.bonds is None:
        return None
    bonds = np.asarray(source.bonds, dtype=np.int64)
    out = {"distances": bonds}
    for feat, derive in (("angles", angles_from_bonds), ("dihedrals", dihedrals_from_bonds)):
        listed = source.topology_tuples(feat)
        out[feat] = derive(bonds) if listed is None else _restrict(listed, source.atom_indices)
    return out


def check_tuples(methods: list[str] | None):
    """``tuples(source)`` for :func:`trajalign.diagnostics.plan_check`: the topology's
    bonded tuples, and the protein tuples of the protein methods in ``methods``."""
    protein = [m for m in methods or () if m in PROTEIN_FEATURES]
    generic = not methods or any(m in ("distances", "angles", "dihedrals") for m in methods)

    def tuples(source) -> dict | None:
        out = dict(bonded_tuples(source) or {}) if generic else {}
        if protein:
            out.update(protein_tuples(source, protein))
        return out or None

    return tuples


class InternalJob(Job):
    """Internal coordinates of each frame.

    Parameters
    ----------
    pairs : sequence of str, optional
        One of ``bonds``, ``chain``, ``all``, or one or more text files of index tuples
        (2, 3 or 4 columns; each file's width says which feature it feeds). Default:
        ``bonds`` for MDAnalysis inputs, ``chain`` for arrays.
    features : str or sequence of str, optional
        Among ``distances, angles, dihedrals, eigvals``. Default: what ``pairs`` defines
        (distances for ``all``; distances, angles and, in 3D, dihedrals for bonds/chain).
    transforms : str or sequence of str
        Among ``inverse, rbf, bins, repeat`` (or ``none``), applied to the distances;
        each is written as its own dataset beside the raw distances.
    rbf_min, rbf_max, rbf_n, rbf_gamma
        Centres of ``rbf`` and ``bins`` (``rbf_n`` is also the length of ``repeat``);
        ``rbf_gamma`` defaults to 1 / spacing^2.
    dihedral_encoding : {"angle", "sincos"}
        ``sincos`` also writes ``dihedrals_sincos`` (F, Q, 2).
    pbc : bool, optional
        Minimum image: ``None`` follows the source (the input's box unless ``--pbc
        none``; where molecules were made whole, only tuples that span molecules take
        it, so a molecule longer than half the box is measured whole).
    undefined : {"raise", "nan"}
        Undefined angles/dihedrals (coincident or collinear points) and zero distances
        under ``inverse``/``eigvals``: an error naming the frame and tuple, or NaN,
        counted in the run's warnings.
    scheme : str
        ``mindist``/``contacts``: which atoms of a residue count (``ca``, ``closest``,
        ``closest-heavy``, ``sidechain``, ``sidechain-heavy``).
    residue_pairs : "all" or path
        ``mindist``/``contacts``: residue pairs (:meth:`ProteinTopology.residue_pairs`).
    contact_cutoff, contact_transform, contact_steepness
        ``contacts``: ``step`` (uint8, ``mindist <= cutoff``) or ``logistic`` (float32,
        ``1 / (1 + exp(steepness (d - cutoff)))``), see :func:`trajalign.features.contacts`.

    Protein features (``phi``, ``psi``, ``omega``, ``chi1`` ... ``chi5``, ``mindist``,
    ``contacts``) need an MDAnalysis input; they mix with the others and need no
    ``pairs``.
    """

    method = "internal"
    writes_positions = False

    def __init__(
        self,
        pairs=None,
        features=None,
        transforms=None,
        rbf_min: float = 0.0,
        rbf_max: float = 10.0,
        rbf_n: int = 20,
        rbf_gamma: float | None = None,
        dihedral_encoding: str = "angle",
        pbc: bool | None = None,
        undefined: str = "raise",
        scheme: str = "closest-heavy",
        residue_pairs: str | os.PathLike = "all",
        contact_cutoff: float = 4.5,
        contact_transform: str = "step",
        contact_steepness: float = 2.0,
    ) -> None:
        super().__init__()
        from .protein import SCHEMES

        if str(scheme).lower() not in SCHEMES:
            raise ParameterError(
                f"unknown --scheme {scheme!r}", f"choose from {', '.join(SCHEMES)}"
            )
        check_contact_options(float(contact_cutoff), contact_transform, float(contact_steepness))
        self.scheme = str(scheme).lower()
        self.residue_pairs = os.fspath(residue_pairs) if residue_pairs else "all"
        self.contact = (float(contact_cutoff), contact_transform, float(contact_steepness))
        self.mindist = None
        self.labels: dict[str, tuple[list[str], list[str] | None]] = {}
        if isinstance(pairs, str | os.PathLike):
            pairs = [pairs]
        self.pairs_spec = [os.fspath(p) for p in pairs] if pairs else []
        self.features_asked = _split(features, "feature", FEATURES)
        self.transforms = [t for t in _split(transforms, "transform", TRANSFORMS) if t != "none"]
        if dihedral_encoding not in DIHEDRAL_ENCODINGS:
            raise ParameterError(
                f"unknown dihedral encoding {dihedral_encoding!r}", "use angle or sincos"
            )
        self.dihedral_encoding = dihedral_encoding
        if undefined not in ("raise", "nan"):
            raise ParameterError(f"unknown undefined policy {undefined!r}", "use raise or nan")
        self.undefined = undefined
        self.centers = rbf_centers(rbf_min, rbf_max, rbf_n)
        self.gamma = default_gamma(self.centers) if rbf_gamma is None else float(rbf_gamma)
        if not (np.isfinite(self.gamma) and self.gamma > 0):
            # self.gamma: rbf_gamma is None when the default 1 / spacing^2 over/underflowed
            raise ParameterError(
                f"--rbf-gamma {self.gamma:g} is not positive and finite", "give gamma > 0"
            )
        self.pbc = pbc
        self.use_box = False
        self._intra: dict[str, np.ndarray] = {}
        self.tuples: dict[str, np.ndarray] = {}
        self.features: list[str] = []
        self.pairs_source = ""
        self.nan_counts: dict[str, list[int]] = {}
        self._base_warnings: list[str] = []

    # ----------------------------------------------------------------- prepare
    def prepare(self, source) -> None:
        generic = [f for f in self.features_asked if f in GENERIC_FEATURES]
        protein = [f for f in self.features_asked if f in PROTEIN_FEATURES]
        if protein and not generic and not self.pairs_spec:
            available, default = {}, []  # protein features need no --pairs
        else:
            available, default = self._available(source, generic)
        asked = generic
        if not self.features_asked:
            asked = [f for f in default if not (f == "dihedrals" and source.dim == 2)]
        self._check_asked(asked, available, source.dim)
        self._take_tuples(asked, available, source.n_points)
        top = self._take_torsions(source, protein)
        self.features = [f for f in self.features_asked if f in asked or f in protein] or asked
        self._check_options(source)
        self._choose_box(source)
        if "mindist" in protein or "contacts" in protein:
            mol = getattr(source, "molecules", None) if self.use_box else None
            self.mindist = mindist_setup(top, self.scheme, self.residue_pairs, source.n_points, mol)
        self.length_unit = source.length_unit
        self._n_points = source.n_points
        self._make_labels(source)
        self._check_sizes(source)

    def _take_torsions(self, source, protein: list[str]):
        """Quadruplets and labels of the asked torsions; the protein topology (or None)."""
        if not protein:
            return None
        top = protein_topology(source, protein)
        torsions = [f for f in protein if f in TORSION_FEATURES]
        for name in torsions:
            quads, labels = torsion_tuples(top, name)
            self.tuples[name] = np.ascontiguousarray(quads, dtype=np.int64)
            self.labels[name] = (labels, None)
        if any(f in _BACKBONE for f in torsions) and top.breaks:
            # once per run, in the summary's warnings (not once per block or worker)
            self._base_warnings = list(top.breaks)
            self.warnings.extend(top.breaks)
        return top

    def _make_labels(self, source) -> None:
        """``self.labels[name] = (labels, labels_last)`` for every dataset."""
        texts = None
        for name, feat, shape, _, _ in self._datasets():
            if name in self.labels:
                continue
            if feat in KINDS:
                if texts is None:
                    texts = atom_texts(getattr(source, "atoms", None), source.n_points)
                base = tuple_labels(KINDS[feat], self.tuples[feat], texts)
            elif feat in ("mindist", "contacts"):
                base = self.labels.get("mindist", (self.mindist.labels, None))[0]
            elif feat == "eigvals":
                base = [f"eigval {k}" for k in range(shape[0])]
            else:  # a torsion's sincos
                base = self.labels[feat][0]
            if name == "distances_inverse":
                base = [f"inverse {s}" for s in base]
            elif feat == "contacts":
                base = ["contact" + s[len("mindist") :] for s in base]
            last = None
            if len(shape) == 2:
                tr = "sincos" if name.endswith("_sincos") else name.rsplit("_", 1)[1]
                last = last_axis_labels(tr, self.centers, self.length_unit)
            self.labels[name] = (base, last)

    def _available(self, source, generic: list[str]) -> tuple[dict[str, np.ndarray], list[str]]:
        """The tuples ``--pairs`` offers per feature, and the features it implies."""
        spec = self.pairs_spec or ["bonds" if source.kind == "mdanalysis" else "chain"]
        if not self.pairs_spec and generic == ["eigvals"]:
            spec = ["all"]  # eigvals need no tuples: do not ask a topology for bonds
        keywords = [p for p in spec if p.lower() in PAIR_KEYWORDS]
        files = [p for p in spec if p.lower() not in PAIR_KEYWORDS]
        if keywords and (files or len(keywords) > 1):
            raise ParameterError(
                f"--pairs {' '.join(spec)} mixes choices",
                "give one of bonds, chain, all, or one or more tuple files",
            )
        if not keywords:
            self.pairs_source = "file"
            return self._from_files(files, source.n_points)
        kind = keywords[0].lower()
        self.pairs_source = kind
        n = source.n_points
        available: dict[str, np.ndarray] = {}
        default = ["distances"] if kind == "all" else ["distances", "angles", "dihedrals"]
        if kind == "all":
            wanted = "distances" in (generic or default)
            n_pairs = n * (n - 1) // 2
            # check the size before the (P, 2) index array is built
            if wanted and n_pairs * 8 > _MAX_FRAME_BYTES:
                raise ParameterError(
                    f"--pairs all on {n} points gives {n_pairs:.3g} distances per frame",
                    "select fewer points with -s, or use --pairs bonds, chain or a tuple file",
                )
            if wanted:
                available["distances"] = all_pairs(n)
        elif kind == "chain":
            for feat, w in _WIDTH.items():
                available[feat] = chain_tuples(n, w)
        else:
            available = self._bonded(source)
        return available, default

    @staticmethod
    def _from_files(files: list[str], n: int) -> tuple[dict[str, np.ndarray], list[str]]:
        """Tuples from ``--pairs`` files, one feature per file's column count."""
        available: dict[str, np.ndarray] = {}
        default = []
        for path in files:
            t = read_tuples(path, n)
            feat = _FEATURE_OF_WIDTH[t.shape[1]]
            if feat in available:
                raise InputError(
                    f"two --pairs files hold {t.shape[1]}-column tuples ({feat})",
                    "give one file per tuple width",
                )
            available[feat] = t
            default.append(feat)
        return available, default

    def _check_asked(self, asked: list[str], available: dict, dim: int) -> None:
        """Every asked feature has tuples, and every tuple file is asked for."""
        for feat in asked:
            if feat == "dihedrals" and dim == 2:
                raise ParameterError(
                    "dihedrals need 3D coordinates; the input is 2D",
                    "ask for --features distances,angles",
                )
            if feat == "eigvals" or feat in available:
                continue
            if self.pairs_source == "all":
                raise ParameterError(
                    f"--features {feat} does not go with --pairs all (every pair)",
                    "use --pairs bonds or chain (or a tuple file) for angles and dihedrals",
                )
            if self.pairs_source == "file":
                raise ParameterError(
                    f"--features {feat} needs a {_WIDTH[feat]}-column --pairs file",
                    f"add one with --pairs FILE, or drop {feat} from --features",
                )
        if self.pairs_source == "file":
            unused = [f for f in available if f not in asked]
            if unused:
                raise ParameterError(
                    f"a --pairs file holds {unused[0]} tuples but --features does not ask "
                    f"for {unused[0]}",
                    f"add {unused[0]} to --features, or drop that file",
                )

    def _take_tuples(self, asked: list[str], available: dict, n: int) -> None:
        for feat in asked:
            if feat == "eigvals":
                continue
            t = available[feat]
            if t.shape[0] == 0:
                why = (
                    f"the selection has {n} points, fewer than {_WIDTH[feat]}"
                    if self.pairs_source in ("chain", "all")
                    else "no such tuples lie within the selection"
                )
                raise SelectionError(
                    f"--pairs {self.pairs_source} gives no {feat}: {why}",
                    f"select more points, or drop {feat} from --features",
                )
            self.tuples[feat] = np.ascontiguousarray(t, dtype=np.int64)

    def _check_options(self, source) -> None:
        if self.transforms and "distances" not in self.features:
            raise ParameterError(
                f"--transform {','.join(self.transforms)} applies to distances, which are "
                "not computed",
                "add distances to --features",
            )
        if self.dihedral_encoding == "sincos" and not self._angular():
            raise ParameterError(
                "--dihedral-encoding sincos needs dihedrals or a protein torsion",
                "add dihedrals (or phi, psi, ...) to --features",
            )
        if self.pbc and not source.has_box:
            raise ParameterError("--pbc was given but the input has no periodic box", "drop --pbc")

    def _angular(self) -> list[str]:
        """The computed dihedral-like features (dihedrals and protein torsions)."""
        return [f for f in self.features if f == "dihedrals" or f in TORSION_FEATURES]

    def _choose_box(self, source) -> None:
        if self.pbc is None:
            self.use_box = source.has_box and source.spec.pbc != "none"
        else:
            self.use_box = bool(self.pbc)
        # tuples within one whole molecule are measured directly: the minimum image would
        # fold a molecule longer than half the box
        self._intra = {}
        mol = getattr(source, "molecules", None) if self.use_box else None
        if mol is not None:
            for feat, t in self.tuples.items():
                self._intra[feat] = np.all(mol[t] == mol[t[:, :1]], axis=1)
            self._intra["eigvals"] = np.array([np.unique(mol).size == 1])

    def _check_sizes(self, source) -> None:
        n = source.n_points
        per_frame = self.frame_bytes(source)
        if "eigvals" in self.features and 8 * n * n > _MAX_FRAME_BYTES:
            raise ParameterError(
                f"eigvals of {n} points need a {8 * n * n / 2**30:.1f} GiB matrix per frame",
                "select fewer points with -s (the eigendecomposition costs O(N^3) per frame)",
            )
        if per_frame > _MAX_FRAME_BYTES:
            raise ParameterError(
                f"the requested features of {n} points take {per_frame / 2**30:.1f} GiB per frame",
                "select fewer points with -s, or use --pairs bonds, chain or a tuple file",
            )

    def _bonded(self, source) -> dict[str, np.ndarray]:
        """Bonds, angles and dihedrals of the topology within the selection; angles and
        dihedrals are derived from the bond graph where the topology has none."""
        if source.bonds is None:
            if source.kind != "mdanalysis":
                raise ParameterError(
                    "--pairs bonds: array inputs carry no bonds",
                    "use --pairs chain, all, or a file of index tuples",
                )
            top = source.spec.top or source.spec.paths[0]
            raise ParameterError(
                f"--pairs bonds: the topology {os.path.basename(top)} has no bonds "
                "within the selection",
                "add --guess-bonds (MDAnalysis' distance-based guesser), or use --pairs "
                "chain, all or a tuple file",
            )
        return bonded_tuples(source)

    # ------------------------------------------------------------------ output
    def _datasets(self) -> list[tuple[str, str, tuple, object, dict]]:
        """(name, feature, per-frame shape, dtype, attrs) of every feature dataset."""
        unit = self.length_unit
        inv_unit = f"1/{unit}"
        k = self.centers.size
        out = []
        for feat in self.features:
            if feat in ("eigvals", "mindist", "contacts"):
                continue
            n_t = self.tuples[feat].shape[0]
            u = unit if feat == "distances" else "radian"
            out.append((feat, feat, (n_t,), np.float32, {"unit": u}))
        if "distances" in self.features:
            p = self.tuples["distances"].shape[0]
            common = {"centers": self.centers, "centers_unit": unit}
            for t in self.transforms:
                if t == "inverse":
                    out.append(("distances_inverse", "distances", (p,), np.float32,
                                {"unit": inv_unit}))  # fmt: skip
                elif t == "rbf":
                    attrs = dict(common, gamma=self.gamma, gamma_unit=f"1/{unit}^2", unit="1")
                    attrs["formula"] = "exp(-gamma * (r - centers[k])**2)"
                    out.append(("distances_rbf", "distances", (p, k), np.float32, attrs))
                elif t == "bins":
                    attrs = dict(common, unit="1")
                    attrs["formula"] = "one-hot: 1 at the centre nearest r (open-ended end bins)"
                    out.append(("distances_bins", "distances", (p, k), np.uint8, attrs))
                elif t == "repeat":
                    out.append(("distances_repeat", "distances", (p, k), np.float32,
                                {"unit": unit}))  # fmt: skip
        if self.dihedral_encoding == "sincos":
            for feat in self._angular():
                q = self.tuples[feat].shape[0]
                out.append((f"{feat}_sincos", feat, (q, 2), np.float32,
                            {"unit": "1", "components": np.array([b"sin", b"cos"])}))  # fmt: skip
        out += self._mindist_datasets()
        if "eigvals" in self.features:
            out.append(("eigvals", "eigvals", (self._n_points,), np.float32, {
                "unit": inv_unit,
                "description": "eigenvalues, largest first, of M[i,j] = 1/r_ij (M[i,i] = 0) "
                "over all selected points",
            }))  # fmt: skip
        return out

    def _mindist_datasets(self) -> list[tuple[str, str, tuple, object, dict]]:
        if self.mindist is None:
            return []
        k = self.mindist.n_pairs
        out = []
        if "mindist" in self.features:
            out.append(("mindist", "mindist", (k,), np.float32, {
                "unit": self.length_unit, "scheme": self.mindist.scheme,
                "description": "smallest distance between the two residues' atoms of the "
                "scheme (exact); atoms holds the atom pair realising it",
            }))  # fmt: skip
        if "contacts" in self.features:
            cutoff, transform, steep = self.contact
            attrs = {"unit": "1", "scheme": self.mindist.scheme, "cutoff": cutoff,
                     "cutoff_unit": self.length_unit, "transform": transform}  # fmt: skip
            if transform == "logistic":
                attrs.update(steepness=steep, steepness_unit=f"1/{self.length_unit}")
                attrs["formula"] = "1 / (1 + exp(steepness * (mindist - cutoff)))"
            else:
                attrs["formula"] = "1 where mindist <= cutoff, else 0"
            dtype = np.uint8 if transform == "step" else np.float32
            out.append(("contacts", "contacts", (k,), dtype, attrs))
        return out

    def frame_bytes(self, source) -> int:
        """Output bytes per frame, so blocks fit the memory budget with the features."""
        total = 0
        for _, _, shape, dtype, _ in self._datasets():
            # the float32 result plus the float32/float64 intermediate of its feature
            total += int(np.prod(shape)) * (np.dtype(dtype).itemsize + 4)
        if self.mindist is not None:
            # the (F, K, 2) int32 atom pairs, and the distances contacts are made from
            total += 8 * self.mindist.n_pairs
            if "mindist" not in self.features:
                total += 4 * self.mindist.n_pairs
        return total

    def declare(self, writer, source) -> None:
        import h5py

        text = h5py.string_dtype("utf-8")
        for name, feat, shape, dtype, attrs in self._datasets():
            writer.create(f"{ROOT}/{name}/value", (source.n_frames, *shape), dtype, attrs)
            if feat in self.tuples:
                writer.f.create_dataset(f"{ROOT}/{name}/indices", data=self.tuples[feat])
            labels, last = self.labels[name]
            writer.f.create_dataset(f"{ROOT}/{name}/labels", data=labels, dtype=text)
            if last is not None:
                writer.f.create_dataset(f"{ROOT}/{name}/labels_last", data=last, dtype=text)
            if feat in ("mindist", "contacts"):
                writer.f.create_dataset(f"{ROOT}/{name}/residues", data=self.mindist.residues)
            if name == "mindist":
                what = "selection positions of the atom pair realising each minimum"
                writer.create(
                    f"{ROOT}/mindist/atoms",
                    (source.n_frames, shape[0], 2),
                    np.int32,
                    {"description": what + ", the first from the pair's first residue"},
                )
            if self.undefined == "nan" and name in _CAN_BE_UNDEFINED:
                # per-frame NaN counts: the record of --undefined nan, also under Dask
                # where the job's own counters stay in the workers
                writer.create(
                    f"{ROOT}/{name}/undefined",
                    (source.n_frames,),
                    np.int32,
                    {"description": "number of undefined (NaN) values in each frame"},
                )
        # read_features' default order: the order the datasets were written in
        names = [d[0] for d in self._datasets()]
        if names:
            writer.f[ROOT].attrs.create("order", names, dtype=text)

    # ----------------------------------------------------------------- process
    def process(self, block) -> BlockResult:
        from ..kernels.geometry import (
            bins_kernel,
            inverse_kernel,
            rbf_kernel,
            repeat_kernel,
            sincos_kernel,
        )

        # NaN input would surface as "undefined angle" or NaN distances; name it as what it is
        check_finite_frames(block.coords)
        x = pad3(block.coords)
        b = x.shape[0]
        if self.use_box:
            h, mode = as_box(block.box, b, block.coords.shape[2])
        else:
            h, mode = np.zeros((1, 3, 3)), 0
        extra: dict[str, np.ndarray] = {}

        def check(values, name, kind, tuples):
            if self.undefined == "raise":
                check_undefined(
                    values, tuples, kind, "raise", frames=block.frames, nan_option=_NAN_OPTION
                )
                return
            # counted in collect(), which the driver runs also when a Dask worker did this
            extra[f"{ROOT}/{name}/undefined"] = nan_per_row(values)

        if "distances" in self.features:
            t = self.tuples["distances"]
            r = self._measure(distances_raw, "distances", x, t, h, mode)
            extra[f"{ROOT}/distances/value"] = r
            k = self.centers.size
            for tr in self.transforms:
                if tr == "inverse":
                    v = np.empty_like(r)
                    inverse_kernel(r, v)
                    check(v, "distances_inverse", "distances", t)
                elif tr == "rbf":
                    v = np.empty((*r.shape, k), dtype=r.dtype)
                    rbf_kernel(r, self.centers, self.gamma, v)
                elif tr == "bins":
                    v = np.empty((*r.shape, k), dtype=np.uint8)
                    bins_kernel(r, self.centers, v)
                else:
                    v = np.empty((*r.shape, k), dtype=r.dtype)
                    repeat_kernel(r, k, v)
                extra[f"{ROOT}/distances_{tr}/value"] = v
        if "angles" in self.features:
            t = self.tuples["angles"]
            a = self._measure(angles_raw, "angles", x, t, h, mode)
            check(a, "angles", "angles", t)
            extra[f"{ROOT}/angles/value"] = a
        for feat in self._angular():
            t = self.tuples[feat]
            d = self._measure(dihedrals_raw, feat, x, t, h, mode)
            check(d, feat, "dihedrals", t)
            extra[f"{ROOT}/{feat}/value"] = d
            if self.dihedral_encoding == "sincos":
                sc = np.empty((*d.shape, 2), dtype=d.dtype)
                sincos_kernel(d, sc)
                extra[f"{ROOT}/{feat}_sincos/value"] = sc
        if self.mindist is not None:
            extra.update(self._mindist_block(x, h, mode))
        if "eigvals" in self.features:
            one = self._intra.get("eigvals")
            ev, bad = eigvals_raw(
                x, *((np.zeros((1, 3, 3)), 0) if one is not None and one[0] else (h, mode))
            )
            check_eigvals(
                ev, bad, x.shape[1], self.undefined, frames=block.frames, nan_option=_NAN_OPTION
            )
            extra[f"{ROOT}/eigvals/value"] = ev
            if self.undefined == "nan":
                check(ev, "eigvals", "eigvals", None)
        return BlockResult(None, extra)

    def _mindist_block(self, x, h, mode) -> dict[str, np.ndarray]:
        """mindist values and atom pairs and/or contacts of one block."""
        from ..features.mindist import contacts

        dist, arg = self.mindist.plan.compute(np.ascontiguousarray(x), kernel_box_table(h, mode))
        out = {}
        if "mindist" in self.features:
            out[f"{ROOT}/mindist/value"] = dist
            out[f"{ROOT}/mindist/atoms"] = arg
        if "contacts" in self.features:
            out[f"{ROOT}/contacts/value"] = contacts(dist, *self.contact)
        return out

    def _measure(self, fn, feat: str, x, t, h, mode):
        """``fn(x, t, h, mode)``, with the tuples inside one whole molecule measured
        without the minimum image."""
        intra = self._intra.get(feat)
        if intra is None or mode == 0 or not intra.any():
            return fn(x, t, h, mode)
        none = np.zeros((1, 3, 3))
        if intra.all():
            return fn(x, t, none, 0)
        out = np.empty((x.shape[0], t.shape[0]), dtype=x.dtype)
        out[:, intra] = fn(x, np.ascontiguousarray(t[intra]), none, 0)
        out[:, ~intra] = fn(x, np.ascontiguousarray(t[~intra]), h, mode)
        return out

    def collect(self, result: BlockResult) -> None:
        for key, per_frame in result.extra.items():
            if key.startswith(f"{ROOT}/") and key.endswith("/undefined"):
                name = key[len(ROOT) + 1 : -len("/undefined")]
                self._count(name, int(per_frame.sum()), int(np.count_nonzero(per_frame)))

    def _count(self, name: str, n_nan: int, n_rows: int) -> None:
        if not n_nan:
            return
        c = self.nan_counts.setdefault(name, [0, 0])
        c[0] += n_nan
        c[1] += n_rows
        self.warnings = list(self._base_warnings) + [
            f"{k}: {v[0]} undefined values written as NaN in {v[1]} frames "
            "(coincident or collinear points)"
            for k, v in self.nan_counts.items()
        ]

    def parameters(self) -> dict:
        p = {
            "method": self.method,
            "pairs": self.pairs_source,
            "pairs_spec": list(self.pairs_spec),
            "features": list(self.features),
            "counts": {k: int(v.shape[0]) for k, v in self.tuples.items()},
            "transforms": list(self.transforms),
            "dihedral_encoding": self.dihedral_encoding,
            "minimum_image": self.use_box,
            "undefined": self.undefined,
            "undefined_counts": {k: v[0] for k, v in self.nan_counts.items()},
        }
        if self.mindist is not None:
            cutoff, transform, steep = self.contact
            p.update(scheme=self.scheme, residue_pairs=self.residue_pairs)
            p["counts"]["mindist"] = self.mindist.n_pairs
            if "contacts" in self.features:
                p.update(contact_cutoff=cutoff, contact_transform=transform)
                if transform == "logistic":
                    p["contact_steepness"] = steep
        if self.transforms:
            p.update(rbf_centers=self.centers.tolist(), rbf_gamma=self.gamma)
        return p
