"""Stamp the git commit of the source into the built package (read by shardmerge.provenance)."""

import subprocess
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).parent


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, check=True,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return ""


class BuildPyWithCommit(build_py):
    def run(self):
        super().run()
        if getattr(self, "editable_mode", False):
            return  # an editable install runs from the checkout, where shardmerge asks git at run time
        commit = _git_commit()
        target = Path(self.build_lib) / "shardmerge" / "_build_info.py"
        if commit and target.parent.is_dir():  # from an sdist without .git: keep the stamp it carries
            target.write_text(f'GIT_COMMIT = "{commit}"\n')


setup(cmdclass={"build_py": BuildPyWithCommit})
