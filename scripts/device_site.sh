#!/usr/bin/env bash
# Builds .device-site/: the packages that Table 4 / Table 24 (`reproduce.py --table 4|24`) and
# bench/run_gpu.sh need but the lent GPU machine's image lacks (it has no package index; see
# bench/README.md, "On a lent GPU machine"). Run where PyPI is reachable, from the repo root:
#   bash scripts/device_site.sh
# then carry `.device-site` in the device call; scripts/gpu_reproduce.sh puts it on PYTHONPATH.
# The image runs CPython 3.12 on x86-64, so wheels are chosen for that, not for this machine.
set -euo pipefail
cd "$(dirname "$0")/.."
site=.device-site
limit_mib=48          # a call carries 64 MiB in all: the working tree (<1 MiB now) must fit beside it

rm -rf "$site"
wheels=$(mktemp -d); trap 'rm -rf "$wheels"' EXIT
# rliable 1.2.0 is on PyPI as a source archive only; it is pure Python, so a wheel built here
# (py3-none-any) is the one the 3.12 interpreter there would build.
python3 -m pip wheel --quiet --no-deps --no-binary rliable rliable==1.2.0 -w "$wheels"
# Pins: pyproject.toml's (minari, gymnasium-robotics, mujoco, ogbench) and, where it only gives a
# floor, the versions the test suite passes with on the CPU machine.
# Not carried: ray (its wheel alone is 79 MB; gpu_reproduce.sh runs parallel local processes
# instead); dm_control (ogbench only imports it in online_locomotion and manipspace, which we
# never load: ogbench.locomaze registers pointmaze with strings); importlib_metadata (diffusers
# imports it only on Python < 3.8); PyOpenGL (mujoco loads it only when MUJOCO_GL=egl|osmesa,
# and gpu_reproduce.sh sets MUJOCO_GL=disable: nothing here renders). Everything else the code
# imports (numpy, pandas, scipy, statsmodels, h5py, huggingface-hub, safetensors, pillow, regex,
# requests, filelock, packaging, typer, typing-extensions, cloudpickle, absl-py, etils, jinja2,
# imageio, setuptools, tabulate, pyyaml, tqdm, matplotlib, seaborn) is in the image.
python3 -m pip install --quiet --target "$site" --no-deps --no-compile --only-binary=:all: \
  --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 \
  gymnasium==1.4.0 farama-notifications==0.0.6 \
  minari==0.5.4 \
  gymnasium-robotics==1.4.2 pettingzoo==1.27.0 \
  mujoco==3.3.7 glfw==2.11.0 \
  ogbench==1.2.2 \
  diffusers==0.42.1 \
  "$wheels"/rliable-1.2.0-*.whl arch==7.2.0

# arch 7.2 (the last release whose bootstrap takes rliable 1.2's random_state; arch 8 dropped it)
# calls pandas' private deprecate_kwarg(old, new); pandas 3 made that deprecate_kwarg(klass, old,
# new), so `import arch` fails there. The image's pandas is by all signs 3.x (it has neither pytz
# nor tzdata, which pandas 2 requires), and pandas 2 (36 MB) does not fit in a call beside this.
# Patch: pass FutureWarning as klass when the signature asks for it; under pandas 2 nothing
# changes. Checked here: harness.aggregate.render's table files under pandas 3.1.1 equal pandas
# 2.3.3's, the IQM interval to the 13th digit.
python3 - "$site/arch/univariate/base.py" <<'PY'
import pathlib, sys
path = pathlib.Path(sys.argv[1])
old = "from pandas.util._decorators import deprecate_kwarg\n"
new = ("from pandas.util._decorators import deprecate_kwarg as _deprecate_kwarg  # patched: scripts/device_site.sh\n"
       "import functools as _functools, inspect as _inspect\n"
       "deprecate_kwarg = (_functools.partial(_deprecate_kwarg, FutureWarning)\n"
       "                   if 'klass' in _inspect.signature(_deprecate_kwarg).parameters else _deprecate_kwarg)\n")
text = path.read_text()
if text.count(old) != 1:
    sys.exit(f"device_site.sh: {path} is not arch 7.2's: re-check the pandas 3 patch")
path.write_text(text.replace(old, new))
PY

# ---- pruning: only what our code never loads ----
# gymnasium_robotics: we use envs/maze/point_maze.py (suites/mazes.py) and `import
# gymnasium_robotics` (suites/envs.py, for registration by name only). Its maze env writes its
# own XML from assets/point/; the Adroit, Kitchen, Fetch and Shadow-hand meshes are loaded only
# when those envs are made (Table 1/2 suites, not carried here).
rm -rf "$site"/gymnasium_robotics/envs/assets/{adroit_hand,kitchen_franka,fetch,hand,stls,textures}
# ogbench: `import ogbench.locomaze` runs ogbench/__init__.py, which imports manipspace and
# powderworld only for their __init__ (gym.register with strings); their env code and the 37 MB
# of manipspace assets load only when such an env is made. online_locomotion (dm_control) is
# never imported.
find "$site"/ogbench/manipspace -mindepth 1 -not -name __init__.py -prune -exec rm -rf {} +
rm -rf "$site"/ogbench/online_locomotion
# diffusers: baselines/diffuser.py imports DDPMScheduler and UNet1DModel; diffusers/__init__.py
# is a lazy module, so the pipelines (text-to-image etc.) and modular pipelines are imported
# only when one of their names is accessed.
rm -rf "$site"/diffusers/pipelines/*/ "$site"/diffusers/modular_pipelines/*/
# mujoco: C headers (for building against MuJoCo), its own tests and test models. The bundled
# plugins (actuator, elasticity, sdf, sensor) are loaded by walking mujoco/plugin, which skips a
# missing folder, and only models with <plugin> need them: the PointMaze and OGBench point XMLs
# have none.
rm -rf "$site"/mujoco/{include,plugin,testdata} "$site"/mujoco/*_test.py
# test folders of every package: never imported by our code.
find "$site" -mindepth 2 -depth -type d -name tests -exec rm -rf {} +
rm -rf "$site"/ci "$site"/doc   # arch's wheel puts its CI and documentation scripts at the top level
rm -rf "$site"/bin     # console scripts (minari CLI, ...): we call the libraries, not these

size_kib=$(du -sk "$site" | cut -f1)
echo "$site: $((size_kib / 1024)) MiB ($size_kib KiB)"
if (( size_kib > limit_mib * 1024 )); then
  echo "device_site.sh: $site is over ${limit_mib} MiB: prune more or carry less" >&2
  exit 1
fi
