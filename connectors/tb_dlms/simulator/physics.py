"""The electrical quantities a simulated meter reports, as closed-form functions of time.

Every value is a pure function of (seed, meter time), so a meter needs no per-tick state, two
polls at the same meter time agree, thousands of meters cost nothing while idle, and a profile
row for any past 15-minute boundary can be computed on demand instead of stored. Energy is the
exact integral of power, with the ripple amplitude bounded so power never goes negative: the
registers are monotonic across polls, reboots and clock jumps forward.
"""
from __future__ import annotations

import math
import random
from dataclasses import dataclass

NOMINAL_VOLTAGE = 230.0
NOMINAL_FREQUENCY = 50.0


@dataclass(frozen=True, slots=True)
class Load:
    """Per-meter constants drawn from the seed: a household/small-business load."""

    seed: int
    #: Meter time (Unix seconds) where the energy integral starts.
    origin: float
    energy_import0: float
    energy_export0: float
    energy_reactive0: float
    mean_power: float  # W
    ripple: float  # W, < mean_power
    period: float  # s
    export_power: float  # W, constant small feed-in
    power_factor: float
    phase_offsets: tuple[float, float, float]
    voltage_offsets: tuple[float, float, float]

    @classmethod
    def from_seed(cls, seed: int, origin: float) -> "Load":
        rnd = random.Random(seed)
        mean = rnd.uniform(800.0, 4000.0)
        return cls(
            seed=seed,
            origin=origin,
            energy_import0=float(rnd.randrange(1_000_000, 50_000_000)),
            energy_export0=float(rnd.randrange(0, 2_000_000)),
            energy_reactive0=float(rnd.randrange(100_000, 5_000_000)),
            mean_power=mean,
            ripple=mean * rnd.uniform(0.2, 0.8),
            period=rnd.uniform(600.0, 7200.0),
            export_power=rnd.uniform(0.0, 150.0),
            power_factor=rnd.uniform(0.85, 0.99),
            phase_offsets=(rnd.uniform(0, math.tau), rnd.uniform(0, math.tau), rnd.uniform(0, math.tau)),
            voltage_offsets=(rnd.uniform(-4.0, 4.0), rnd.uniform(-4.0, 4.0), rnd.uniform(-4.0, 4.0)),
        )

    # Power: P(t) = mean + ripple*sin(w t); energy: its integral in Wh.
    def active_power(self, t: float) -> float:
        w = math.tau / self.period
        return self.mean_power + self.ripple * math.sin(w * (t - self.origin))

    def _energy(self, t: float) -> float:
        dt = t - self.origin
        w = math.tau / self.period
        # Integral of mean + ripple*sin(w s) ds from 0 to dt, in Wh; never decreasing.
        return (self.mean_power * dt + self.ripple * (1.0 - math.cos(w * dt)) / w) / 3600.0

    def energy_import(self, t: float) -> int:
        return int(self.energy_import0 + max(0.0, self._energy(t)))

    def energy_export(self, t: float) -> int:
        return int(self.energy_export0 + max(0.0, (t - self.origin)) * self.export_power / 3600.0)

    def energy_reactive(self, t: float) -> int:
        tan = math.tan(math.acos(self.power_factor))
        return int(self.energy_reactive0 + max(0.0, self._energy(t)) * tan)

    def reactive_power(self, t: float) -> float:
        return self.active_power(t) * math.tan(math.acos(self.power_factor))

    def apparent_power(self, t: float) -> float:
        return self.active_power(t) / self.power_factor

    def voltage(self, phase: int, t: float) -> float:
        wobble = 1.5 * math.sin(t / 97.0 + self.phase_offsets[phase])
        return NOMINAL_VOLTAGE + self.voltage_offsets[phase] + wobble

    def current(self, phase: int, t: float) -> float:
        share = (1.0 + 0.15 * math.sin(t / 311.0 + self.phase_offsets[phase])) / 3.0
        return self.apparent_power(t) * share / self.voltage(phase, t)

    def frequency(self, t: float) -> float:
        return NOMINAL_FREQUENCY + 0.04 * math.sin(t / 53.0 + self.phase_offsets[0])
