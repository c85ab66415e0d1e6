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
        commit = _git_commit()
        if commit:  # building from an sdist without .git keeps the stamp the sdist carries
            target = Path(self.build_lib) / "shardmerge" / "_build_info.py"
            target.write_text(f'GIT_COMMIT = "{commit}"\n')


setup(cmdclass={"build_py": BuildPyWithCommit})
