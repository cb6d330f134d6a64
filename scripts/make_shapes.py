"""Write a folder of synthetic coloured shapes to try `ganlib train` on:

python scripts/make_shapes.py shapes --count 600 --image-size 40
ganlib train shapes --out runs/shapes --max-steps 500
"""

from __future__ import annotations

import argparse

from ganlib.data.shapes import make_shapes

if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("root", help="the folder to write (subfolders: one per shape)")
    parser.add_argument("--count", type=int, default=600, help="images")
    parser.add_argument("--image-size", type=int, default=40, help="side in pixels (odd sizes too)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shapes and colours")
    args = parser.parse_args()
    print(make_shapes(args.root, args.count, args.image_size, args.seed))
