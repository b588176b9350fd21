"""`python -m lowbit ARGS` and the `lowbit` command of the wheel: the lowbit tool shipped inside
the package (its bin/), run with ARGS in place of this process."""
import os
import sys
from pathlib import Path


def main() -> None:
    tool = Path(__file__).resolve().parent / "bin" / "lowbit"
    if not tool.is_file():
        sys.exit("lowbit: this install of the package has no bundled tool (install the wheel from "
                 "scripts/build-wheel.sh, or run dist/bin/lowbit of a source build)")
    os.execv(str(tool), [str(tool), *sys.argv[1:]])


if __name__ == "__main__":
    main()
