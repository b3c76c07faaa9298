"""Make the sample trajectories shipped in this folder (fixed seed, a few hundred kB).

- ``chain2d.npz`` (key ``arr``): a 2D bead chain of 12 points over 2048 frames that
  flexes, drifts and tumbles, shaped (2048, 12, 2) like the trajectory that section 5.6 of
  the equivariance chapter aligns.
- ``butane.pdb`` + ``butane.dcd``: butane (14 atoms, the chapter's coordinates, in
  Angstrom) over 1000 frames with a fluctuating C-C-C-C torsion, thermal noise, drift and
  rigid tumbling, in a 40 Angstrom periodic box; the PDB carries elements and bonds.

Run ``python sample_data/make_sample_data.py`` to remake them; the output is identical
for the same numpy version.
"""

from __future__ import annotations

import os

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
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


def ou(rng, n, theta, sigma, size=()):
    """Ornstein-Uhlenbeck series (n, *size) with unit time step, started at 0."""
    out = np.zeros((n, *size))
    for t in range(1, n):
        out[t] = out[t - 1] * (1 - theta) + sigma * rng.normal(size=size)
    return out


def rot2d(a):
    c, s = np.cos(a), np.sin(a)
    return np.stack([np.stack([c, -s], -1), np.stack([s, c], -1)], -2)


def chain2d(rng, n_frames=2048, n_points=12):
    """Flexing chain: bond angles follow OU processes; the whole chain turns and drifts."""
    bend = 0.35 + ou(rng, n_frames, 0.02, 0.05, (n_points - 2,))
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


def main():
    rng = np.random.default_rng(SEED)
    np.savez(os.path.join(HERE, "chain2d.npz"), arr=chain2d(rng))
    write_butane(butane(rng), os.path.join(HERE, "butane.pdb"), os.path.join(HERE, "butane.dcd"))


if __name__ == "__main__":
    main()
