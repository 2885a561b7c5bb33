"""``python -m cdemi.data fashion_mnist DEST``: export verified Fashion-MNIST IDX files into DEST."""
import argparse

from .fashion_mnist import export

ap = argparse.ArgumentParser(prog="python -m cdemi.data", description=__doc__)
ap.add_argument("dataset", choices=["fashion_mnist"])
ap.add_argument("dest")
ap.add_argument("--root", default=None, help="folder to look in first (default $CDEMI_DATA)")
ap.add_argument("--download", action="store_true", help="let torchvision download into --root if not found")
a = ap.parse_args()
print(f"Fashion-MNIST ready in {export(a.dest, a.root, a.download)}")
