"""``trajalign internal``: distances, angles, dihedrals and their featurisations per frame.

Writes no coordinates: every feature goes to ``/trajalign/features/<name>/value`` with its
index tuples in ``/trajalign/features/<name>/indices`` (``/trajalign/atom_indices``
numbering, i.e. positions in the selection).
"""

from __future__ import annotations

import os

import numpy as np

from .._validate import check_finite_frames
from ..box import as_box, pad3
from ..errors import InputError, ParameterError, SelectionError
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
    rbf_centers,
    read_tuples,
)
from ..pipeline import BlockResult, Job

__all__ = [
    "DIHEDRAL_ENCODINGS",
    "FEATURES",
    "PAIR_KEYWORDS",
    "ROOT",
    "TRANSFORMS",
    "bonded_tuples",
    "InternalJob",
]

FEATURES = ("distances", "angles", "dihedrals", "eigvals")
TRANSFORMS = ("none", "inverse", "rbf", "bins", "repeat")
PAIR_KEYWORDS = ("bonds", "chain", "all")
DIHEDRAL_ENCODINGS = ("angle", "sincos")
_WIDTH = {"distances": 2, "angles": 3, "dihedrals": 4}
_FEATURE_OF_WIDTH = {2: "distances", 3: "angles", 4: "dihedrals"}
ROOT = "trajalign/features"
_NAN_OPTION = "--undefined nan"
# one frame's features must fit comfortably in memory (all pairs of 23 000 points do not)
_MAX_FRAME_BYTES = 2**31
_CAN_BE_UNDEFINED = ("angles", "dihedrals", "distances_inverse", "eigvals")


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
    ) -> None:
        super().__init__()
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
        available, default = self._available(source)
        asked = self.features_asked
        if not asked:
            asked = [f for f in default if not (f == "dihedrals" and source.dim == 2)]
        self._check_asked(asked, available, source.dim)
        self._take_tuples(asked, available, source.n_points)
        self.features = asked
        self._check_options(source)
        self._choose_box(source)
        self.length_unit = source.length_unit
        self._n_points = source.n_points
        self._check_sizes(source)

    def _available(self, source) -> tuple[dict[str, np.ndarray], list[str]]:
        """The tuples ``--pairs`` offers per feature, and the features it implies."""
        spec = self.pairs_spec or ["bonds" if source.kind == "mdanalysis" else "chain"]
        if not self.pairs_spec and self.features_asked == ["eigvals"]:
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
            wanted = "distances" in (self.features_asked or default)
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
        if self.dihedral_encoding == "sincos" and "dihedrals" not in self.features:
            raise ParameterError(
                "--dihedral-encoding sincos needs dihedrals", "add dihedrals to --features"
            )
        if self.pbc and not source.has_box:
            raise ParameterError("--pbc was given but the input has no periodic box", "drop --pbc")

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
            if feat == "eigvals":
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
        if "dihedrals" in self.features and self.dihedral_encoding == "sincos":
            q = self.tuples["dihedrals"].shape[0]
            out.append(("dihedrals_sincos", "dihedrals", (q, 2), np.float32,
                        {"unit": "1", "components": np.array([b"sin", b"cos"])}))  # fmt: skip
        if "eigvals" in self.features:
            out.append(("eigvals", "eigvals", (self._n_points,), np.float32, {
                "unit": inv_unit,
                "description": "eigenvalues, largest first, of M[i,j] = 1/r_ij (M[i,i] = 0) "
                "over all selected points",
            }))  # fmt: skip
        return out

    def frame_bytes(self, source) -> int:
        """Output bytes per frame, so blocks fit the memory budget with the features."""
        total = 0
        for _, _, shape, dtype, _ in self._datasets():
            # the float32 result plus the float32/float64 intermediate of its feature
            total += int(np.prod(shape)) * (np.dtype(dtype).itemsize + 4)
        return total

    def declare(self, writer, source) -> None:
        for name, feat, shape, dtype, attrs in self._datasets():
            writer.create(f"{ROOT}/{name}/value", (source.n_frames, *shape), dtype, attrs)
            if feat in self.tuples:
                writer.f.create_dataset(f"{ROOT}/{name}/indices", data=self.tuples[feat])
            if self.undefined == "nan" and name in _CAN_BE_UNDEFINED:
                # per-frame NaN counts: the record of --undefined nan, also under Dask
                # where the job's own counters stay in the workers
                writer.create(
                    f"{ROOT}/{name}/undefined",
                    (source.n_frames,),
                    np.int32,
                    {"description": "number of undefined (NaN) values in each frame"},
                )

    # ----------------------------------------------------------------- process
    def process(self, block) -> BlockResult:
        from ..kernels.geometry import (
            bins_kernel,
            inverse_kernel,
            nan_per_row,
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
        if "dihedrals" in self.features:
            t = self.tuples["dihedrals"]
            d = self._measure(dihedrals_raw, "dihedrals", x, t, h, mode)
            check(d, "dihedrals", "dihedrals", t)
            extra[f"{ROOT}/dihedrals/value"] = d
            if self.dihedral_encoding == "sincos":
                sc = np.empty((*d.shape, 2), dtype=d.dtype)
                sincos_kernel(d, sc)
                extra[f"{ROOT}/dihedrals_sincos/value"] = sc
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
        if self.transforms:
            p.update(rbf_centers=self.centers.tolist(), rbf_gamma=self.gamma)
        return p
