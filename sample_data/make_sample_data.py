"""Make the sample trajectories shipped in this folder (fixed seed, about 1.2 MB in all).

- ``chain2d.npz`` (key ``arr``): a 2D bead chain of 12 points over 2048 frames that
  flexes, drifts and tumbles, shaped (2048, 12, 2) like the trajectory that section 5.6 of
  the equivariance chapter aligns.
- ``butane.pdb`` + ``butane.dcd``: butane (14 atoms, the chapter's coordinates, in
  Angstrom) over 1000 frames with a fluctuating C-C-C-C torsion, thermal noise, drift and
  rigid tumbling, in a 40 Angstrom periodic box; the PDB carries elements and bonds.
- ``dimer.pdb`` + ``dimer.dcd``: a periodic system written as real (GROMACS-style)
  trajectories are, for periodic-boundary repair (issue 12). Two bonded chains of 12 CA
  beads ("resname CHA", segids A and B, 3.8 A apart, 22 bonds as CONECT records), an
  antiparallel pair of helices 9.5 A apart that flexes, tumbles and drifts about 1.5 box
  lengths as one complex, and 50 single-atom ions ("resname ION", no bonds), 74 atoms
  over 500 frames (1 ps apart), in a triclinic box: a rhombic dodecahedron (angles
  60, 60, 90) whose edges breathe between 29.2 and 30.9 A (NPT-like; the DCD stores
  each frame's box, MDAnalysis reads it back exactly). EVERY ATOM IS WRAPPED INTO THE
  CELL ON ITS OWN (fractional coordinates in [0, 1)), so the chains are split across
  the boundary in almost every frame, the two chains sit in different images, and atoms
  jump by a box vector between frames. MDAnalysis sees 2 + 50 fragments.
- ``dimer_truth.npz`` (key ``arr``, (500, 74, 3) float32): the coordinates before
  wrapping, on a 1/256 A grid. ``dimer.dcd`` frame t holds
  ``truth[t] - floor(truth[t] @ inv(H_t)) @ H_t`` (H_t: box vectors as rows) in float32;
  MDAnalysis' ``unwrap`` + ``NoJump`` recover the truth up to one lattice vector per
  molecule, constant over the frames (up to 2e-5 A, float32 rounding).

Run ``python sample_data/make_sample_data.py`` to remake them; the output is identical
for the same numpy version. ``dimer(rng)`` regenerates the dimer's truth and boxes
(``rng = np.random.default_rng([SEED, 3])``) and ``wrap_atoms`` wraps it.
"""

from __future__ import annotations

import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
DIMER_FILES = ("dimer.pdb", "dimer.dcd", "dimer_truth.npz")
SEED = 20261125

# butane from section 5.5 of the chapter, Angstrom
BUTANE = np.array(
    [
        [-0.5630, 0.5160, 0.0071],
        [0.5630, -0.5159, 0.0071],
        [-1.9293, -0.1506, -0.0071],
        [1.9294, 0.1505, -0.0071],
        [-0.4724, 1.1666, -0.8706],
        [-0.4825, 1.1551, 0.8940],
        [0.4825, -1.1551, 0.8940],
        [0.4723, -1.1665, -0.8706],
        [-2.0542, -0.7710, -0.9003],
        [-2.0651, -0.7856, 0.8742],
        [-2.7203, 0.6060, -0.0058],
        [2.0542, 0.7709, -0.9003],
        [2.7202, -0.6062, -0.0059],
        [2.0652, 0.7854, 0.8743],
    ]
)
BUTANE_NAMES = ["C1", "C2", "C3", "C4"] + [f"H{i}" for i in range(1, 11)]
BUTANE_BONDS = [
    (0, 1), (0, 2), (1, 3), (0, 4), (0, 5), (1, 6), (1, 7),
    (2, 8), (2, 9), (2, 10), (3, 11), (3, 12), (3, 13),
]  # fmt: skip


def ou(rng, n, theta, sigma, size=(), start=0.0):
    """Ornstein-Uhlenbeck series (n, *size) with unit time step, started at ``start``."""
    out = np.zeros((n, *size))
    out[0] = start
    for t in range(1, n):
        out[t] = out[t - 1] * (1 - theta) + sigma * rng.normal(size=size)
    return out


def rot2d(a):
    c, s = np.cos(a), np.sin(a)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def chain2d(rng, n_frames=2048, n_points=12, start=None):
    """Flexing chain: bond angles follow OU processes; the whole chain turns and drifts.

    ``start`` (n_points - 2,) offsets the bond angles of frame 0 from their mean 0.35 rad;
    without it frame 0 is a perfectly symmetric arc, whose skewness along the long axis is
    zero (so a skew sign there would be arbitrary).
    """
    start = np.zeros(n_points - 2) if start is None else start
    bend = 0.35 + ou(rng, n_frames, 0.02, 0.05, (n_points - 2,), start)
    heading = np.concatenate([np.zeros((n_frames, 1)), np.cumsum(bend, axis=1)], axis=1)
    steps = np.stack([np.cos(heading), np.sin(heading)], -1)  # unit bonds
    x = np.concatenate([np.zeros((n_frames, 1, 2)), np.cumsum(steps, axis=1)], axis=1)
    x -= x.mean(axis=1, keepdims=True)
    # tumbling: an angle that wanders several full turns over the run
    angle = np.cumsum(0.01 + ou(rng, n_frames, 0.01, 0.01))
    drift = np.cumsum(rng.normal(scale=0.05, size=(n_frames, 2)), axis=0)
    x = np.einsum("fnd,fed->fne", x, rot2d(angle)) + drift[:, None, :]
    return x.astype(np.float32)


def random_rotation(rng):
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    w, a, b, c = q
    return np.array(
        [
            [1 - 2 * (b * b + c * c), 2 * (a * b - c * w), 2 * (a * c + b * w)],
            [2 * (a * b + c * w), 1 - 2 * (a * a + c * c), 2 * (b * c - a * w)],
            [2 * (a * c - b * w), 2 * (b * c + a * w), 1 - 2 * (a * a + b * b)],
        ]
    )


def axis_rotation(axis, angle):
    axis = axis / np.linalg.norm(axis)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + np.sin(angle) * k + (1 - np.cos(angle)) * k @ k


def butane(rng, n_frames=1000):
    """Torsion about C1-C2 (OU around trans), noise 0.03 A, slow tumbling and drift."""
    torsion = ou(rng, n_frames, 0.05, 0.15)
    moving = [1, 3, 6, 7, 11, 12, 13]  # atoms on the C2 side of the C1-C2 bond
    axis = BUTANE[1] - BUTANE[0]
    frames = np.empty((n_frames, 14, 3))
    orient = random_rotation(rng)
    small = 0.02
    center = np.array([20.0, 20.0, 20.0])
    for t in range(n_frames):
        x = BUTANE.copy()
        r = axis_rotation(axis, torsion[t])
        x[moving] = (x[moving] - BUTANE[0]) @ r.T + BUTANE[0]
        x += rng.normal(scale=0.03, size=x.shape)
        # a small random rotation each frame composes into tumbling
        step_axis = rng.normal(size=3)
        orient = axis_rotation(step_axis, small) @ orient
        center = center + rng.normal(scale=0.02, size=3)
        frames[t] = (x - x.mean(0)) @ orient.T + center
    return frames.astype(np.float32)


def write_butane(frames, pdb, dcd):
    import warnings

    import MDAnalysis as mda

    u = mda.Universe.empty(14, n_residues=1, atom_resindex=np.zeros(14, int), trajectory=True)
    u.add_TopologyAttr("names", BUTANE_NAMES)
    u.add_TopologyAttr("elements", ["C"] * 4 + ["H"] * 10)
    u.add_TopologyAttr("types", ["C"] * 4 + ["H"] * 10)
    u.add_TopologyAttr("masses", [12.011] * 4 + [1.008] * 10)
    u.add_TopologyAttr("resnames", ["BUT"])
    u.add_TopologyAttr("resids", [1])
    u.add_TopologyAttr("segids", ["BUT"])
    u.add_TopologyAttr("chainIDs", ["A"] * 14)
    u.add_TopologyAttr("bonds", BUTANE_BONDS)
    box = np.array([40.0, 40.0, 40.0, 90.0, 90.0, 90.0])
    u.load_new(frames, format=mda.coordinates.memory.MemoryReader, dimensions=box, dt=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u.atoms.write(pdb, frames=[0])
        with mda.Writer(dcd, n_atoms=14) as w:
            for _ in u.trajectory:
                w.write(u.atoms)


# ---------------------------------------------------------------- periodic dimer
DIMER_BEADS = 12  # CA beads per chain
DIMER_IONS = 50
DIMER_BOX = 30.0  # Angstrom, rhombic dodecahedron edge (the image distance)
DIMER_ANGLES = (60.0, 60.0, 90.0)  # alpha, beta, gamma: GROMACS' rhombic dodecahedron


def box_vectors(dims):
    """(F, 6) [a, b, c, alpha, beta, gamma] -> (F, 3, 3) box vectors as rows, float64,
    in MDAnalysis' convention (a along x, b in the xy-plane)."""
    from MDAnalysis.lib.mdamath import triclinic_vectors

    return np.stack([triclinic_vectors(d, dtype=np.float64) for d in dims])


def wrap_atoms(x, h):
    """Every atom into the cell on its own: x - floor(x @ inv(H)) @ H, frame by frame."""
    frac = np.einsum("fnd,fde->fne", x, np.linalg.inv(h))
    return np.einsum("fnd,fde->fne", frac - np.floor(frac), h)


def helix_ca(n, phase=0.0):
    """CA trace of an ideal alpha helix along z: radius 2.3 A, 100 deg and 1.5 A per
    residue (3.8 A between neighbours), centred on the origin."""
    k = np.arange(n)
    a = np.radians(100.0) * k + phase
    x = np.stack([2.3 * np.cos(a), 2.3 * np.sin(a), 1.5 * k], -1)
    return x - x.mean(0)


def dimer(rng, n_frames=500):
    """Two 12-bead helices side by side (antiparallel, 9.5 A apart) plus 50 ions in a
    breathing rhombic-dodecahedron box; returns (unwrapped coordinates (F, N, 3) float64,
    box dimensions (F, 6) float32).

    The complex flexes (per-bead noise 0.1 A, the helices hinge by a few degrees and
    their distance breathes), tumbles rigidly, and its centre drifts about 1.5 box
    lengths. Its centre and the ions move in fractional coordinates of the box, so they
    scale with it (as a barostat scales the centres of molecules); the complex's own
    shape does not. Coordinates lie on a 1/256 A grid.
    """
    n = DIMER_BEADS
    a = helix_ca(n) + [-4.75, 0.0, 0.0]
    # antiparallel: the same helix turned 180 degrees about x, so it runs down z
    b = helix_ca(n, phase=np.pi) * [1, -1, -1] + [4.75, 0.0, 0.0]
    # box: every edge breathes together, 2.5% slow oscillation plus 0.3% noise
    t = np.arange(n_frames)
    scale = 1 + 0.025 * np.sin(2 * np.pi * t / 330.0) + ou(rng, n_frames, 0.05, 0.0007)
    dims = np.zeros((n_frames, 6), np.float32)
    dims[:, :3] = (DIMER_BOX * scale)[:, None]
    dims[:, 3:] = DIMER_ANGLES
    h = box_vectors(dims)
    # the complex: hinge angle about x, inter-helix distance, per-bead noise
    hinge = np.radians(6.0) * np.sin(2 * np.pi * t / 170.0) + ou(rng, n_frames, 0.05, 0.01)
    sep = ou(rng, n_frames, 0.05, 0.05)
    noise = ou(rng, n_frames, 0.3, 0.07, (2 * n, 3))
    orient = random_rotation(rng)
    frac_c = np.array([0.9, 0.5, 0.85])  # start near a corner: split from frame 0
    velocity = np.array([1.4, -0.9, 0.6]) / n_frames  # fractional units per frame
    x = np.empty((n_frames, 2 * n + DIMER_IONS, 3))
    for f in range(n_frames):
        bf = (b - [4.75, 0, 0]) @ axis_rotation(np.array([1.0, 0, 0]), hinge[f]).T
        bf += [4.75 + sep[f], 0.0, 0.0]
        body = np.concatenate([a - [sep[f], 0.0, 0.0], bf]) + noise[f]
        orient = axis_rotation(rng.normal(size=3), 0.05) @ orient
        frac_c = frac_c + velocity + rng.normal(scale=0.003, size=3)
        x[f, : 2 * n] = (body - body.mean(0)) @ orient.T + frac_c @ h[f]
    # ions: random walks in fractional coordinates (about 0.4 A per frame)
    frac_i = rng.uniform(size=(DIMER_IONS, 3)) + np.cumsum(
        rng.normal(scale=0.013, size=(n_frames, DIMER_IONS, 3)), axis=0
    )
    x[:, 2 * n :] = np.einsum("fnd,fde->fne", frac_i, h)
    # on a grid of 1/256 A: exact in float32, and the truth file compresses to < 300 kB
    return np.round(x * 256.0) / 256.0, dims


def dimer_bonds():
    n = DIMER_BEADS
    return [(i, i + 1) for c in (0, n) for i in range(c, c + n - 1)]


def write_dimer(x, dims, pdb, dcd, truth):
    """Wrap every atom into the box on its own and write PDB (frame 0, CRYST1, CONECT),
    DCD (every frame, with its box) and the unwrapped truth (npz key ``arr``)."""
    import warnings

    import MDAnalysis as mda

    n, n_ions = 2 * DIMER_BEADS, DIMER_IONS
    n_atoms = n + n_ions
    wrapped = wrap_atoms(x, box_vectors(dims)).astype(np.float32)
    resindex = np.concatenate([np.arange(n), n + np.arange(n_ions)])
    segindex = np.repeat([0, 1, 2], [DIMER_BEADS, DIMER_BEADS, n_ions])
    u = mda.Universe.empty(
        n_atoms, n_residues=n + n_ions, n_segments=3, atom_resindex=resindex,
        residue_segindex=segindex[resindex], trajectory=True,
    )  # fmt: skip
    u.add_TopologyAttr("names", ["CA"] * n + ["NA"] * n_ions)
    u.add_TopologyAttr("elements", ["C"] * n + ["Na"] * n_ions)
    u.add_TopologyAttr("types", ["C"] * n + ["Na"] * n_ions)
    u.add_TopologyAttr("masses", [12.011] * n + [22.989768] * n_ions)  # as MDAnalysis guesses
    u.add_TopologyAttr("resnames", ["CHA"] * n + ["ION"] * n_ions)
    resids = list(range(1, DIMER_BEADS + 1)) * 2 + list(range(1, n_ions + 1))
    u.add_TopologyAttr("resids", resids)
    u.add_TopologyAttr("segids", ["A", "B", "ION"])
    u.add_TopologyAttr("chainIDs", ["A"] * DIMER_BEADS + ["B"] * DIMER_BEADS + ["I"] * n_ions)
    u.add_TopologyAttr("bonds", dimer_bonds())
    u.load_new(wrapped, format=mda.coordinates.memory.MemoryReader, dimensions=dims, dt=1.0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        u.atoms.write(pdb, frames=[0])
        with mda.Writer(dcd, n_atoms=n_atoms) as w:
            for _ in u.trajectory:
                w.write(u.atoms)
    np.savez_compressed(truth, arr=x.astype(np.float32))


def main():
    rng = np.random.default_rng(SEED)
    # frame 0 slightly asymmetric (bond angles 0.35 rad +- ~0.1), from a generator of its
    # own so that the draws of ``rng`` (and with them butane) stay as they were
    start = np.random.default_rng([SEED, 2]).normal(scale=0.05, size=10)
    np.savez(os.path.join(HERE, "chain2d.npz"), arr=chain2d(rng, start=start))
    write_butane(butane(rng), os.path.join(HERE, "butane.pdb"), os.path.join(HERE, "butane.dcd"))
    x, dims = dimer(np.random.default_rng([SEED, 3]))
    write_dimer(x, dims, *(os.path.join(HERE, f) for f in DIMER_FILES))


if __name__ == "__main__":
    main()
