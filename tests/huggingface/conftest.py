import sys
from pathlib import Path

# tiny.py, shared with the DDP worker, which runs as a script from this folder
sys.path.insert(0, str(Path(__file__).parent))
