"""Three trials that pass a baton through a file, to show how the process executor schedules.

    python tests/apps/relay.py -m hydra/sweeper=linesweep hydra.sweeper.n_trials=3 \
        hydra.sweeper.n_jobs=2 hydra.sweep.dir=/tmp/relay

Trial 0 waits, while it runs, until trial 1 has finished and trial 2 has started; trial 1 waits
until trial 0 has started. With two slots refilled as soon as one frees, all three complete. A
batch barrier (trial 2 starting only once trials 0 and 1 both ended) or trials run one at a time
make trial 0 give up and fail. Every step is a line in <hydra.sweep.dir>/events.log.
"""

import time
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

GIVE_UP_S = 120  # a safety net, not a measurement: a broken schedule fails instead of hanging


def note(log: Path, event: str) -> None:
    with log.open("a") as file:  # one short appended write per line: lines stay whole
        file.write(event + "\n")


def wait_for(log: Path, *events: str) -> None:
    deadline = time.monotonic() + GIVE_UP_S
    while not set(events) <= set(log.read_text().splitlines()):
        if time.monotonic() > deadline:
            raise RuntimeError(f"waited {GIVE_UP_S} s for {events}: the trials did not overlap")
        time.sleep(0.02)


@hydra.main(version_base=None, config_path=None)
def relay(cfg: DictConfig) -> float:
    hydra_cfg = HydraConfig.get()
    number = hydra_cfg.job.num
    log = Path(hydra_cfg.sweep.dir) / "events.log"
    note(log, f"start {number}")
    if number == 0:
        wait_for(log, "end 1", "start 2")
    elif number == 1:
        wait_for(log, "start 0")
    note(log, f"end {number}")
    return float(number)


if __name__ == "__main__":
    relay()
