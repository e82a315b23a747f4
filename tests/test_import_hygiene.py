import subprocess
import sys

UI_LIBS = ("textual", "rich", "plotext")


def test_core_imports_no_ui_library():
    code = (
        "import sys, pkgutil, importlib, spectrascope.core as core\n"
        "for m in pkgutil.walk_packages(core.__path__, 'spectrascope.core.'):\n"
        "    importlib.import_module(m.name)\n"
        f"print(','.join(sorted(n for n in sys.modules if n.split('.')[0] in {UI_LIBS!r})))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"core pulled in UI libraries: {out.stdout}"
