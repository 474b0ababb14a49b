"""The tour of pyro-langevin on embedded data (grows with the library).

    python examples/tour.py
"""
import argparse
import runpy
from pathlib import Path

HERE = Path(__file__).parent


def main(args):
    print("== 1. Sampling a correlated 2-D Gaussian with MCMC(ULA(...)) and MCMC(MALA(...))")
    runpy.run_path(str(HERE / "sample_2d.py"), run_name="__main__")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    main(parser.parse_args([]))
