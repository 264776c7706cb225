"""An H100's compiled program of a kernel, read on a machine without a GPU.

XLA compiles for a GPU it does not have when it is given the GPU's description
(a *deviceless* topology: ``jax.experimental.topologies.get_topology_desc(
platform='cuda', target_config=...)``, here :data:`H100_TARGET_CONFIG`, an
H100 SXM's figures). The compiled program is the one the GPU would run, up to
what XLA can only settle on the device (its autotuning of matrix products).
With ``xla_dump_to`` it leaves, per compiled program:

* the optimised HLO (``*after_optimizations.txt``): every fusion, its
  operands' and results' shapes;
* the thunk sequence (``*thunk_sequence.txt``): every kernel launch in order,
  with its grid and block sizes;
* the PTX of every kernel (``*.ptx``; since jaxlib 0.11 only with
  ``xla_dump_emitter_re`` set too, :data:`DUMP_OPTIONS`).

:func:`kernel_table` reads them into one row per kernel launch (those inside a
``while`` body once, the body of ``lax.map``'s loop when there is one) and a
roofline estimate per launch: the larger of its operands and results over
:data:`BANDWIDTH` (each array read once: caches absorb a stencil's repeated
reads) and its threads times the PTX instructions of its kernel over
:data:`ISSUE_RATE` (one instruction per clock per scheduler; a kernel's
straight-line PTX is what each thread runs; a kernel whose PTX loops, such as
a matrix product or a Pallas step, is marked and its loop bodies are counted
once, so its issue estimate is a lower bound, unless the caller gives the
kernel's average trip count, ``loop_trips``: then each loop body counts that
many times). This is a
model, not a measurement: for the 32x32 Myrtle-5 NTK it gives 15.5 us per pair
where the H100 measured 26 (``results/bench/session14/``), and of the two
variants measured there it ranks both as the H100 did (``materialize_on``
slower by 6% in the model, 8% measured; ``materialize_conv`` 38% / 15%).
Use it to find which kernels carry the time and to rank variants before a GPU
run times them, never as a GPU figure.

Where a ``ptxas`` is installed (CUDA's assembler; :func:`find_ptxas`), each
PTX module is also assembled for the H100 as its driver would, and each row
carries its kernel's registers per thread and spills, hence how many of its
warps an SM holds at once (:func:`resident_warps`, columns ``regs`` and
``warps/SM``; the CSV's ``occupancy``). The roofline leaves occupancy out:
the H100 ran Myrtle-5's NTK with the Pallas ``diagonal`` steps in 13% less
time at 8 warps than at 4 (its pooled 32x32 step alone in 11% less), where
the model puts them equal; compiled, that step takes 168 registers a thread
at 4 warps, so an SM holds 12 of its warps, and 114 at 8, 16 warps
(``results/bench/session14/``, ``session19/``).

Needs JAX's CUDA plugin of the installed jaxlib's version (``pip install
jax-cuda13-plugin==<jaxlib version>``; no GPU, driver or CUDA install is
needed to compile). With it in the environment JAX would try the GPU first, so
keep it in a virtual environment of its own (``make xla-gpu-model`` builds one,
``.venv-xla-gpu``, and runs the Myrtle-5 variants there), and set
``JAX_PLATFORMS=cpu`` before Python starts: the plugin then serves only the
deviceless compilations.

Usage::

    JAX_PLATFORMS=cpu python -m ntkexp.xla_gpu_model --arch myrtle5 --n 32 \\
        --variants default,separate_ntk,padded_first,separate_padded \\
        --out results/bench/session15/xla_gpu_model_myrtle5.csv
    JAX_PLATFORMS=cpu python -m ntkexp.xla_gpu_model --arch myrtle5 --n 32 \\
        --fast-kernel true,pallas_diagonal --variants default,padded_first
    JAX_PLATFORMS=cpu python -m ntkexp.xla_gpu_model --arch myrtle5 --n 32 \\
        --fast-kernel pallas_diagonal_first_masked --num-warps 4,8,16
    JAX_PLATFORMS=cpu python -m ntkexp.xla_gpu_model --empirical \\
        NTKEXP_STRUCTURED,WEIGHT_GRADIENTS --side 64 --n 16 --wrn-k 4

With ``--empirical`` the rows are the XLA kernels of one call of the WRN
empirical NTK benchmark (``ntkexp.bench``), totals in microseconds per call.
Its cuDNN convolutions are library calls, outside the kernel model:
:func:`cudnn_convolutions` counts their multiply-adds and whether XLA lets them
use TF32 tensor cores, and bounds their time at the units' peaks
(:data:`FP32_PEAK`, :data:`TF32_PEAK`), columns ``cudnn_*``.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import itertools
import math
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from pathlib import Path
from typing import Any, Callable, Iterator, Mapping, Optional, Sequence

#: An H100 80GB HBM3 (SXM) as XLA's GPU compiler describes a target.
H100_TARGET_CONFIG = """\
gpu_device_info {
  threads_per_block_limit: 1024
  threads_per_warp: 32
  shared_memory_per_block: 49152
  shared_memory_per_core: 233472
  threads_per_core_limit: 2048
  core_count: 132
  fpus_per_core: 128
  block_dim_limit_x: 2147483647
  block_dim_limit_y: 65535
  block_dim_limit_z: 65535
  memory_bandwidth: 3352320000000
  l2_cache_size: 52428800
  clock_rate_ghz: 1.98
  device_memory_size: 84929347584
  shared_memory_per_block_optin: 232448
  cuda_compute_capability {
    major: 9
  }
  registers_per_core_limit: 65536
  registers_per_block_limit: 65536
}
platform_name: "CUDA"
dnn_version_info {
  major: 9
  minor: 7
}
runtime_version {
  major: 13
  minor: 0
  patch: 0
}
device_description_str: "NVIDIA H100 80GB HBM3"
"""

#: HBM bandwidth of an H100 SXM (bytes / s).
BANDWIDTH = 3.35e12
#: Thread instructions per second: 132 SMs x 4 schedulers x 1.98 GHz x 32 lanes.
ISSUE_RATE = 132 * 4 * 1.98e9 * 32
#: Peak float32 multiply-adds of an H100 SXM, as FLOP / s: its CUDA cores
#: (132 SMs x 128 lanes x 2 x 1.98 GHz) and its TF32 tensor cores (dense;
#: NVIDIA's H100 datasheet: 67 and 495 TFLOPS).
FP32_PEAK = 67e12
TF32_PEAK = 495e12

#: What one H100 SM holds at once (CUDA C++ Programming Guide, "Compute
#: Capabilities", compute capability 9.0): 32-bit registers, resident warps
#: and blocks, shared memory (bytes), the shared memory the runtime keeps per
#: block, and the unit registers are given to a warp in.
SM_REGISTERS = 65536
SM_WARPS = 64
SM_BLOCKS = 32
SM_SHARED = 233472
BLOCK_SHARED_RESERVED = 1024
REGISTER_UNIT = 256

_DTYPE_BYTES = {'pred': 1, 's8': 1, 'u8': 1, 'bf16': 2, 'f16': 2, 's16': 2,
                'f32': 4, 's32': 4, 'u32': 4, 'f64': 8, 's64': 8, 'u64': 8,
                'c64': 8, 'c128': 16}
_SHAPE = re.compile(r'\b(' + '|'.join(_DTYPE_BYTES) + r')\[([\d,]*)\]')
_INSTRUCTION = re.compile(
    r'^\s+(?:ROOT )?%([\w.\-]+) = (.*?) ([a-z\-]+)\((.*?)\)(?:, |$)')
_LAUNCH = re.compile(r'(\w+) grid: \[(\d+), (\d+), (\d+)\] '
                     r'threads: \[(\d+), (\d+), (\d+)\]'
                     r'(?:\s+shared_memory: (\d+) bytes)?')
_PTX_ENTRY = re.compile(r'\.entry (\w+)\((.*?)^\}', re.S | re.M)
_PTX_INSTRUCTION = re.compile(r'^\s+(?:@!?%p\d+\s+)?[a-z]')
_PTX_NOT_EXECUTED = ('.reg', '.local', '.shared', 'ld.param')


@dataclasses.dataclass(frozen=True)
class KernelRow:
    """One kernel launch of a compiled program.

    Attributes:
        kernel: the kernel's name (the fusion's, dots as underscores).
        threads: grid times block size.
        instructions: PTX instructions in the kernel's body (per thread).
        bytes_in: bytes of the fusion's operands.
        bytes_out: bytes of its results.
        tensor_cores: whether its PTX has tensor-core (``mma``, ``wgmma``)
            instructions.
        loop_instructions: of ``instructions``, those inside loops (each
            loop body counted once, so the issue estimate is a lower bound,
            unless ``trips`` is given).
        trips: the loops' average trip count per thread, where known
            (:func:`kernel_table`'s ``loop_trips``), else None (once).
        block_threads: threads per block (0 where unknown).
        shared_bytes: shared memory per block: the launch's dynamic shared
            memory and the kernel's static (``ptxas``).
        registers: registers per thread as ``ptxas`` allocates them for an
            H100 (:func:`ptxas_resources`), None where not assembled.
        spill_bytes: bytes each thread spills to local memory and loads
            back (``ptxas``' spill stores plus loads), None likewise.
    """
    kernel: str
    threads: int
    instructions: int
    bytes_in: int
    bytes_out: int
    tensor_cores: bool = False
    loop_instructions: int = 0
    trips: Optional[float] = None
    block_threads: int = 0
    shared_bytes: int = 0
    registers: Optional[int] = None
    spill_bytes: Optional[int] = None

    @property
    def resident_warps(self) -> Optional[int]:
        """Warps of this kernel one SM holds at once
        (:func:`resident_warps`), None without its registers."""
        if self.registers is None or not self.block_threads:
            return None
        return resident_warps(self.registers, self.block_threads,
                              self.shared_bytes)

    @property
    def loop(self) -> bool:
        """Whether its PTX loops."""
        return self.loop_instructions > 0

    @property
    def executed_instructions(self) -> float:
        """Instructions each thread runs: its loops' bodies ``trips`` times
        (once where ``trips`` is None)."""
        if self.trips is None:
            return self.instructions
        return self.instructions + (self.trips - 1) * self.loop_instructions

    @property
    def memory_seconds(self) -> float:
        return (self.bytes_in + self.bytes_out) / BANDWIDTH

    @property
    def issue_seconds(self) -> float:
        return self.threads * self.executed_instructions / ISSUE_RATE

    @property
    def seconds(self) -> float:
        """The roofline estimate: the larger of the two."""
        return max(self.memory_seconds, self.issue_seconds)


def resident_warps(registers: int, block_threads: int,
                   shared_bytes: int = 0) -> int:
    """Warps one H100 SM holds at once of a kernel whose threads use
    ``registers`` each, in blocks of ``block_threads`` with ``shared_bytes``
    of shared memory (the occupancy calculator's arithmetic: each warp's
    registers rounded up to :data:`REGISTER_UNIT`; every block also keeps
    :data:`BLOCK_SHARED_RESERVED` of shared memory).

    A memory-bound kernel needs warps enough to keep the memory busy: the
    latency of a load is hidden only by other warps' loads in flight. This
    is what the roofline of :class:`KernelRow` leaves out.
    """
    warps = -(-block_threads // 32)
    per_warp = -(-registers * 32 // REGISTER_UNIT) * REGISTER_UNIT
    blocks = min(SM_BLOCKS, SM_WARPS // warps,
                 SM_REGISTERS // (per_warp * warps) if registers else SM_BLOCKS,
                 SM_SHARED // (shared_bytes + BLOCK_SHARED_RESERVED))
    return blocks * warps


_PTXAS_ENTRY = re.compile(r"Compiling entry function '(\w+)'")
_PTXAS_SPILLS = re.compile(r'(\d+) bytes spill stores, (\d+) bytes spill loads')
_PTXAS_USED = re.compile(r'Used (\d+) registers(?:.*?(\d+) bytes smem)?')


def parse_ptxas(report: str) -> dict[str, tuple[int, int, int]]:
    """``{kernel: (registers, spill_bytes, static_shared_bytes)}`` from
    ``ptxas -v``'s report."""
    resources, kernel, spills = {}, None, 0
    for line in report.splitlines():
        if match := _PTXAS_ENTRY.search(line):
            kernel, spills = match.group(1), 0
        elif (match := _PTXAS_SPILLS.search(line)) and kernel:
            spills = int(match.group(1)) + int(match.group(2))
        elif (match := _PTXAS_USED.search(line)) and kernel:
            resources[kernel] = (int(match.group(1)), spills,
                                 int(match.group(2) or 0))
            kernel = None
    return resources


def find_ptxas() -> Optional[str]:
    """The ``ptxas`` to assemble with: ``$PTXAS``, else the one on the
    ``PATH``, else CUDA's default install's; None without one."""
    for candidate in (os.environ.get('PTXAS'), shutil.which('ptxas'),
                      '/usr/local/cuda/bin/ptxas'):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


def ptxas_resources(ptx_file: str | os.PathLike, ptxas: Optional[str] = None
                    ) -> dict[str, tuple[int, int, int]]:
    """:func:`parse_ptxas` of one PTX module assembled by ``ptxas -v`` for
    the module's own target (``.target``, e.g. ``sm_90a``), as the GPU's
    driver would: the registers each kernel's threads get, what they spill.
    Empty without a ``ptxas`` (:func:`find_ptxas`).

    Raises:
        RuntimeError: ``ptxas`` refuses the module (its message).
    """
    ptxas = ptxas or find_ptxas()
    if ptxas is None:
        return {}
    text = Path(ptx_file).read_text()
    target = re.search(r'^\.target (\w+)', text, re.M)
    with tempfile.TemporaryDirectory() as scratch:
        done = subprocess.run(
            [ptxas, '-v', f'-arch={target.group(1) if target else "sm_90a"}',
             str(ptx_file), '-o', os.path.join(scratch, 'out.cubin')],
            capture_output=True, text=True, check=False)
    if done.returncode:
        raise RuntimeError(f'{ptxas} could not assemble {ptx_file}: '
                           f'{done.stderr.strip()[:400]}')
    return parse_ptxas(done.stdout + done.stderr)


def shape_bytes(text: str) -> int:
    """Bytes of every array shape in an HLO type (tuples summed)."""
    return sum(_DTYPE_BYTES[dtype] * math.prod(int(d) for d in dims.split(',')
                                              if d)
               for dtype, dims in _SHAPE.findall(text))


def ptx_loop_instructions(ptx: str) -> dict[str, int]:
    """``{kernel: instructions inside its loops}`` of the kernels of a PTX
    module with a loop (a branch back to a label above it; e.g. the Pallas
    steps): the lines from the label to the branch (nested loops inside an
    outer one counted with it, once)."""
    counts = {}
    for match in _PTX_ENTRY.finditer(ptx):
        lines = match.group(2).split('\n')
        labels, inside = {}, set()
        for index, line in enumerate(lines):
            label = re.match(r'^(\$?\w+):', line)
            if label:
                labels[label.group(1)] = index
            branch = re.search(r'\bbra(?:\.uni)?\s+(\$?\w+);', line)
            if branch and branch.group(1) in labels:
                inside.update(range(labels[branch.group(1)], index + 1))
        if inside:
            counts[match.group(1)] = sum(
                1 for index in inside if _executed(lines[index]))
    return counts


def _executed(line: str) -> bool:
    """Whether a PTX line is an instruction a thread runs (not a directive
    or a parameter load)."""
    return bool(_PTX_INSTRUCTION.match(line)
                and not line.strip().startswith(_PTX_NOT_EXECUTED))


def ptx_tensor_cores(ptx: str) -> set[str]:
    """The kernels of a PTX module that use the tensor cores (``mma`` or
    ``wgmma`` instructions)."""
    return {match.group(1) for match in _PTX_ENTRY.finditer(ptx)
            if re.search(r'^\s+(?:@!?%p\d+\s+)?w?mma\.', match.group(2),
                         re.M)}


def ptx_instructions(ptx: str) -> dict[str, int]:
    """``{kernel: instructions}`` of a PTX module (directives and parameter
    loads not counted)."""
    return {match.group(1): sum(1 for line in match.group(2).split('\n')
                                if _executed(line))
            for match in _PTX_ENTRY.finditer(ptx)}


def _instructions(hlo: str) -> Iterator[tuple[dict, str, str, str, list,
                                              str]]:
    """``(types, name, type, op, operand names, line)`` of each instruction of
    an HLO module in order; ``types`` maps every name read so far to its
    type."""
    types: dict = {}
    for line in hlo.split('\n'):
        match = _INSTRUCTION.match(line)
        if not match:
            continue
        name, type_, op, operands = match.groups()
        types[name] = type_
        names = re.findall(r'%([\w.\-]+(?:#\d+)?)', operands)
        for operand in names:
            # jaxlib 0.11's HLO text names a tuple's element `%tuple#k`
            # where 0.10 read it with a get-tuple-element.
            if '#' in operand and operand not in types:
                tuple_name, index = operand.split('#')
                types[operand] = tuple_element(types.get(tuple_name, ''),
                                               int(index))
        yield types, name, type_, op, names, line


def tuple_element(type_: str, index: int) -> str:
    """The ``index``-th element type of an HLO tuple type such as
    ``(f32[2]{0}, (s32[], f32[3]{0}))``, without XLA's ``/*index=5*/``
    comments; ``''`` where there is none."""
    type_ = re.sub(r'/\*.*?\*/', '', type_)
    if not type_.startswith('('):
        return ''
    depth, start, elements = 0, 1, []
    for i, char in enumerate(type_):
        if char in '([{':
            depth += 1
        elif char in ')]}':
            depth -= 1
        if (char == ',' and depth == 1) or (char == ')' and depth == 0):
            elements.append(type_[start:i].strip())
            start = i + 1
    return elements[index] if index < len(elements) else ''


def fusion_bytes(hlo: str) -> dict[str, tuple[int, int]]:
    """``{kernel: (operand bytes, result bytes)}`` of the fusions and custom
    calls of an optimised HLO module (kernel names as in the thunk sequence:
    dots as underscores)."""
    types, fusions = {}, {}
    for types, name, type_, op, operands, line in _instructions(hlo):
        if op in ('fusion', 'custom-call'):
            # A Triton call (e.g. a Pallas step) launches the kernel its
            # backend config names; repeated names are numbered __1, __2, ...
            # in the (scheduled) order of the module, as the launches are.
            kernel = re.search(r', name = "(\w+)"', line)
            key = kernel.group(1) if kernel else name
            if kernel and key in fusions:
                key = next(f'{key}__{i}' for i in itertools.count(1)
                           if f'{key}__{i}' not in fusions)
            fusions[key] = (type_, operands)
    return {name.replace('.', '_'): (
        sum(shape_bytes(types.get(o, '')) for o in operands),
        shape_bytes(type_)) for name, (type_, operands) in fusions.items()}


@dataclasses.dataclass(frozen=True)
class ConvolutionRow:
    """One cuDNN convolution (a library call, not one of XLA's kernels).

    Attributes:
        name: the HLO instruction.
        kind: ``'forward'``, ``'backward_input'`` or ``'backward_filter'``.
        flops: ``2 x`` its multiply-adds.
        tensor_cores: whether XLA lets cuDNN use TF32 tensor cores (operand
            precision not ``highest``).
        bytes_in, bytes_out: its operands' and results' bytes.
    """
    name: str
    kind: str
    flops: int
    tensor_cores: bool
    bytes_in: int
    bytes_out: int

    @property
    def seconds(self) -> float:
        """At the peak of its units or the memory's, whichever is slower
        (a bound: cuDNN reaches some fraction of either)."""
        peak = TF32_PEAK if self.tensor_cores else FP32_PEAK
        return max(self.flops / peak,
                   (self.bytes_in + self.bytes_out) / BANDWIDTH)


_CUDNN_KINDS = {'__cudnn$convForward': 'forward',
                '__cudnn$convBiasActivationForward': 'forward',
                '__cudnn$convBackwardInput': 'backward_input',
                '__cudnn$convBackwardFilter': 'backward_filter'}


def _dims(type_: str) -> list[int]:
    """The dimensions of the first array shape in an HLO type."""
    match = _SHAPE.search(type_)
    return [int(d) for d in match.group(2).split(',') if d] if match else []


def cudnn_convolutions(hlo: str) -> list[ConvolutionRow]:
    """The cuDNN convolutions of an optimised HLO module.

    Their multiply-adds follow from the forward convolution's output and
    filter (``dim_labels`` are the forward convolution's for every kind):
    ``2 x`` filter entries ``x`` output entries ``/`` output features.
    """
    rows = []
    for types, name, type_, op, args, line in _instructions(hlo):
        target = re.search(r'custom_call_target="([^"]+)"', line)
        if op != 'custom-call' or not target or (
                target.group(1) not in _CUDNN_KINDS):
            continue
        kind = _CUDNN_KINDS[target.group(1)]
        shapes = [_dims(types.get(a, '')) for a in args]
        result = _dims(type_)
        output = result if kind == 'forward' else shapes[
            0 if kind == 'backward_input' else 1]
        filter_ = result if kind == 'backward_filter' else shapes[1]
        labels = re.search(r'dim_labels=\w+_(\w+)->', line).group(1)
        out_features = filter_[labels.index('o')]
        precision = re.search(r'operand_precision=\{([^}]*)\}', line)
        rows.append(ConvolutionRow(
            name=name, kind=kind,
            flops=2 * math.prod(filter_) * math.prod(output) // out_features,
            tensor_cores=not (precision and 'highest' in precision.group(1)),
            bytes_in=sum(shape_bytes(types.get(a, '')) for a in args),
            bytes_out=shape_bytes(type_)))
    return rows


def kernel_table(dump_dir: str | os.PathLike,
                 loop_trips: Optional[Mapping[str, float]] = None,
                 assemble: bool = True) -> list[KernelRow]:
    """The kernel launches of the one program dumped in ``dump_dir``: those of
    its first ``while`` body when it has one (a ``lax.map`` step; a loop
    nested in it counted once), otherwise all of them.

    ``loop_trips`` maps kernel names to the average trip count of their PTX
    loops (e.g. the rows a Pallas ``diagonal`` step walks per program:
    ``h^2 / (2 h - 1)`` for an ``h x h`` output), which their issue
    estimates then use (:attr:`KernelRow.trips`).

    With ``assemble`` and a ``ptxas`` (:func:`find_ptxas`), each PTX module
    is assembled for the H100 and its kernels' rows carry their registers
    and spills (:func:`ptxas_resources`), hence their occupancy
    (:attr:`KernelRow.resident_warps`).

    Raises:
        FileNotFoundError: ``dump_dir`` holds no GPU compilation dump.
    """
    dump = Path(dump_dir)
    hlo_files = sorted(dump.glob('*gpu_after_optimizations.txt'))
    thunk_files = sorted(dump.glob('*thunk_sequence.txt'))
    if not hlo_files or not thunk_files:
        raise FileNotFoundError(
            f'{dump} holds no XLA:GPU dump (*gpu_after_optimizations.txt and '
            f'*thunk_sequence.txt): compile for a GPU with xla_dump_to set '
            f'(compile_for_h100).')
    instructions, looping, tensor, resources = {}, {}, set(), {}
    ptxas = find_ptxas() if assemble else None
    for ptx in sorted(dump.glob('*.ptx')):
        text = ptx.read_text()
        instructions.update(ptx_instructions(text))
        looping.update(ptx_loop_instructions(text))
        tensor |= ptx_tensor_cores(text)
        if ptxas:
            try:
                resources.update(ptxas_resources(ptx, ptxas))
            except RuntimeError as error:  # e.g. a ptxas older than the PTX
                warnings.warn(f'{error}; its kernels\' rows carry no '
                              f'registers')
    loop_trips = dict(loop_trips or {})
    sizes = fusion_bytes(hlo_files[-1].read_text())
    sequence = _loop_body(thunk_files[-1].read_text())
    rows = []
    for match in _LAUNCH.finditer(sequence):
        name = match.group(1)
        bytes_in, bytes_out = sizes.get(name, (0, 0))
        registers, spills, static_shared = resources.get(name,
                                                         (None, None, 0))
        rows.append(KernelRow(
            kernel=name, threads=math.prod(int(g) for g in match.groups()[1:7]),
            instructions=instructions.get(name, 0), bytes_in=bytes_in,
            bytes_out=bytes_out, tensor_cores=name in tensor,
            loop_instructions=looping.get(name, 0),
            trips=loop_trips.get(name) if name in looping else None,
            block_threads=math.prod(int(g) for g in match.groups()[4:7]),
            shared_bytes=int(match.group(8) or 0) + static_shared,
            registers=registers, spill_bytes=spills))
    return rows


def _loop_body(sequence: str) -> str:
    """The lines of a thunk sequence's first ``while`` body (nested loops'
    bodies included, each once), or the whole sequence without a loop."""
    lines = sequence.split('\n')
    for i, line in enumerate(lines):
        if line.strip() == 'body:':
            depth = len(line) - len(line.lstrip())
            body = []
            for nested in lines[i + 1:]:
                # (XLA writes a nested loop's "condition:" unindented.)
                if (nested.strip() not in ('', 'condition:') and
                        len(nested) - len(nested.lstrip()) <= depth):
                    break
                body.append(nested)
            return '\n'.join(body)
    return sequence


def h100_device() -> Any:
    """The one device of a deviceless H100 topology.

    Raises:
        RuntimeError: JAX's CUDA plugin is not installed (names the fix).
    """
    from jax.experimental import topologies  # pylint: disable=g-import-not-at-top
    try:
        topology = topologies.get_topology_desc(
            platform='cuda', target_config=H100_TARGET_CONFIG,
            topology='1x1x1')
    except Exception as error:  # The plugin's absence shows as several types.
        import jaxlib  # pylint: disable=g-import-not-at-top
        raise RuntimeError(
            f'cannot compile for an H100 here ({error}). It needs JAX\'s CUDA '
            f'plugin of this jaxlib\'s version (pip install '
            f'jax-cuda13-plugin=={jaxlib.__version__}, best in an environment '
            f'of its own: `make xla-gpu-model`) and JAX_PLATFORMS=cpu set '
            f'before Python starts.') from error
    return topology.devices[0]


# What compile_for_h100 asks XLA to dump besides the HLO and the thunks: the
# emitters' output, PTX among it (jaxlib 0.10 dumped the PTX with xla_dump_to
# alone, 0.11 -- the H100 machine's -- only for emitters this pattern names).
DUMP_OPTIONS = {'xla_dump_emitter_re': '.*'}


def abstract_h100() -> Any:
    """A context in which Pallas lowers its Triton kernels for an H100
    without one: jaxlib 0.11 reads the GPU from the abstract mesh's device
    (and fails on a CPU without it); 0.10 takes it and needs none."""
    import inspect  # pylint: disable=g-import-not-at-top
    import jax  # pylint: disable=g-import-not-at-top
    params = inspect.signature(jax.sharding.AbstractDevice).parameters
    extra = dict(platform='gpu') if 'platform' in params else {}
    device = jax.sharding.AbstractDevice(device_kind='NVIDIA H100',
                                         num_cores=None, **extra)
    return jax.sharding.use_abstract_mesh(jax.sharding.AbstractMesh(
        (1,), ('x',), axis_types=(jax.sharding.AxisType.Auto,),
        abstract_device=device))


def compile_for_h100(fn: Callable, shapes: Sequence[tuple[tuple[int, ...],
                                                          Any]],
                     dump_dir: str | os.PathLike) -> Any:
    """Compiles ``jax.jit(fn)`` for an H100 on arguments of ``shapes``
    (``(shape, dtype)`` pairs), dumping the program into ``dump_dir``."""
    import jax  # pylint: disable=g-import-not-at-top
    sharding = jax.sharding.SingleDeviceSharding(h100_device())
    args = [jax.ShapeDtypeStruct(shape, dtype, sharding=sharding)
            for shape, dtype in shapes]
    with abstract_h100():
        lowered = jax.jit(fn).lower(*args)
    return lowered.compile({'xla_dump_to': str(dump_dir), **DUMP_OPTIONS})


def fastconv_rows(arch: str, side: int, n: int, variant: str,
                  dump_dir: str | os.PathLike, fast_kernel: bool | str = True,
                  loop_trips: Optional[Mapping[str, float]] = None,
                  num_warps: Optional[int] = None
                  ) -> tuple[list[KernelRow], int]:
    """The kernel table of ``ntkexp.fastconv``'s NTK of one ``n x n`` block of
    ``side x side x 3`` float32 images of ``arch`` (:mod:`ntkexp.fastconv.bench`'s
    architectures), recursion variant ``variant``
    (:data:`ntkexp.fastconv.bench.VARIANTS`), compiled for an H100 with the
    settings the recursion takes on a GPU. ``fast_kernel`` as the models take
    it: ``True`` (XLA) or a Pallas mode such as ``'pallas_diagonal'``,
    whose steps run ``num_warps`` Triton warps per program (default: the
    kind's own, :func:`ntkexp.fastconv.pallas.default_num_warps`);
    ``loop_trips`` as :func:`kernel_table` takes it.

    Returns:
        ``(rows, pairs)``: the launches of one ``lax.map`` step of the
        recursion (all of them when the block is one step) and the pairs of
        images that step computes.
    """
    import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
    from ntkexp import backend  # pylint: disable=g-import-not-at-top
    from ntkexp.fastconv import bench, recursion  # pylint: disable=g-import-not-at-top
    fn, kwargs = bench.ARCHITECTURES[arch]
    with backend.targeting('gpu'):
        if num_warps is not None and isinstance(fast_kernel, str):
            from ntkexp.fastconv import pallas, select  # pylint: disable=g-import-not-at-top
            _, _, kernel_fn = fn(**kwargs, fast_kernel=True)
            kernel_fn = pallas.pallas_kernel_fn(
                kernel_fn, interpret=False, num_warps=num_warps,
                kind=select.pallas_kind(fast_kernel))
        else:
            _, _, kernel_fn = fn(**kwargs, fast_kernel=fast_kernel)
        with bench.recursion_settings(variant):
            compile_for_h100(
                lambda a, b: kernel_fn(a, b, get='ntk'),
                [((n, side, side, 3), jnp.float32)] * 2, dump_dir)
            rows, cols = recursion.block_chunks(
                recursion.step_pairs(kernel_fn.net, (side, side)), n)
    return kernel_table(dump_dir, loop_trips), min(rows, n) * min(cols, n)


def empirical_rows(method: str, side: int, n: int, wrn_k: int,
                   dump_dir: str | os.PathLike
                   ) -> tuple[list[KernelRow], list[ConvolutionRow]]:
    """The kernel table of the empirical NTK benchmark's WRN-10-``wrn_k``
    (``n`` images ``side x side x 3``, 10 logits; :func:`ntkexp.bench.
    empirical_wrn`) by ``method`` (:data:`ntkexp.bench.EMPIRICAL_CHOICES`),
    compiled for an H100 with exact float32 products, and its cuDNN
    convolutions (library calls, not XLA's kernels: not in the table)."""
    import jax  # pylint: disable=g-import-not-at-top
    from ntkexp import backend, bench  # pylint: disable=g-import-not-at-top
    apply_fn, x, params = bench.empirical_wrn(n, side, wrn_k)
    fn, _ = bench.empirical_method_fn(method, apply_fn)
    shapes = [(x.shape, x.dtype)]
    leaves, tree = jax.tree_util.tree_flatten(params)
    shapes += [(a.shape, a.dtype) for a in leaves]
    with jax.default_matmul_precision('highest'), backend.targeting('gpu'):
        compile_for_h100(
            lambda x, *leaves: fn(x, jax.tree_util.tree_unflatten(tree,
                                                                  leaves)),
            shapes, dump_dir)
    hlo = sorted(Path(dump_dir).glob('*gpu_after_optimizations.txt'))[-1]
    return kernel_table(dump_dir), cudnn_convolutions(hlo.read_text())


def convolution_summary(convs: Sequence[ConvolutionRow]) -> dict[str, float]:
    """Totals of :func:`cudnn_convolutions`: calls, GFLOP, calls allowed the
    tensor cores, and microseconds at the peaks (:attr:`ConvolutionRow.
    seconds`)."""
    return {'cudnn_calls': len(convs),
            'cudnn_gflop': sum(c.flops for c in convs) / 1e9,
            'cudnn_tensor_core_calls': sum(c.tensor_cores for c in convs),
            'cudnn_peak_us': sum(c.seconds for c in convs) * 1e6}


def summary(rows: Sequence[KernelRow], per: float = 1.0) -> dict[str, float]:
    """Totals of a kernel table, in microseconds per ``per`` (e.g. pairs).

    ``model_us`` sums each launch's roofline (the larger of its memory and
    issue times); ``serial_us`` sums both, as if no launch overlapped its
    memory traffic with its instructions. Against the fourteenth session's
    H100 timings ``serial_us`` is the closer in absolute terms (Myrtle-5
    25.2 us per pair against 26.0 measured, CNN-GAP 38.7 against 36.3,
    WRN-10-1 40.4 against 49.9; ``model_us`` 1.6-1.8x below them), while
    neither ranks the two measured materialisations exactly
    (``results/bench/session16/``).
    """
    return {
        'launches': len(rows),
        'memory_us': sum(r.memory_seconds for r in rows) / per * 1e6,
        'issue_us': sum(r.issue_seconds for r in rows) / per * 1e6,
        'model_us': sum(r.seconds for r in rows) / per * 1e6,
        'serial_us': sum(r.memory_seconds + r.issue_seconds
                         for r in rows) / per * 1e6,
        'megabytes': sum(r.bytes_in + r.bytes_out for r in rows) / per / 1e6,
    }


def occupancy(rows: Sequence[KernelRow]) -> str:
    """``kernel=registers/warps`` (``+spills`` where it spills) of each
    looping kernel (the Pallas steps, matrix products) whose registers are
    known, ``;``-separated: the CSV's ``occupancy`` column."""
    seen = {}
    for r in rows:
        if r.loop and r.registers is not None:
            seen[r.kernel] = (f'{r.kernel}={r.registers}/{r.resident_warps}'
                              + (f'+{r.spill_bytes}' if r.spill_bytes else ''))
    return ';'.join(seen.values())


def format_table(rows: Sequence[KernelRow], per: float = 1.0) -> str:
    """The rows as text, per ``per`` (launches with under 1 ns left out)."""
    assembled = any(r.registers is not None for r in rows)
    lines = [f"{'kernel':36s} {'threads':>10s} {'instr':>6s} {'MB in':>7s} "
             f"{'MB out':>7s} {'us mem':>7s} {'us issue':>8s}"
             + (f" {'regs':>4s} {'warps/SM':>8s}" if assembled else '')]
    for r in rows:
        if r.seconds / per < 1e-9:
            continue
        name = r.kernel + ('' if not r.loop else '*' if r.trips is None
                           else '~') + ('+' if r.tensor_cores else '')
        lines.append(
            f'{name:36s} {r.threads:10d} {r.executed_instructions:6.0f} '
            f'{r.bytes_in / per / 1e6:7.2f} {r.bytes_out / per / 1e6:7.2f} '
            f'{r.memory_seconds / per * 1e6:7.2f} '
            f'{r.issue_seconds / per * 1e6:8.2f}'
            + ('' if not assembled else
               f' {"-":>4s} {"-":>8s}' if r.registers is None else
               f' {r.registers:4d} {r.resident_warps:8d}'
               + (f' spills {r.spill_bytes} B' if r.spill_bytes else '')))
    if any(r.loop and r.trips is None for r in rows):
        lines.append('* loops: each loop body counted once (a lower bound)')
    for r in rows:
        if r.loop and r.trips is not None:
            lines.append(f'~ {r.kernel}: {r.instructions - r.loop_instructions}'
                         f' instructions + {r.loop_instructions} in loops x '
                         f'{r.trips:g} trips (given)')
    if any(r.tensor_cores for r in rows):
        lines.append('+ tensor-core instructions (mma / wgmma)')
    if assembled:
        lines.append(f'regs: per thread (ptxas, sm_90a); warps/SM: resident '
                     f'at once, of {SM_WARPS}')
    totals = summary(rows, per)
    lines.append(f"model {totals['model_us']:.2f} us (memory "
                 f"{totals['memory_us']:.2f}, issue {totals['issue_us']:.2f}; "
                 f"serial {totals['serial_us']:.2f}), "
                 f"{totals['megabytes']:.1f} MB")
    return '\n'.join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        description='Kernel-by-kernel roofline model of ntkexp.fastconv '
                    'kernels as compiled for an H100, on a machine without '
                    'one (module docstring).')
    parser.add_argument('--arch', default='myrtle5',
                        help='comma-separated ntkexp.fastconv.bench '
                             'architectures')
    parser.add_argument('--side', type=int, default=32)
    parser.add_argument('--n', type=int, default=32,
                        help='block side: an n x n block of pairs')
    parser.add_argument('--variants', default='default',
                        help='comma-separated ntkexp.fastconv.bench.VARIANTS')
    parser.add_argument('--empirical', default=None,
                        help='instead: comma-separated empirical NTK methods '
                             '(ntkexp.bench.EMPIRICAL_CHOICES) of the WRN-10-k '
                             'benchmark, on --n images of --side pixels')
    parser.add_argument('--wrn-k', type=int, default=4)
    parser.add_argument('--fast-kernel', default='true',
                        help="comma-separated: 'true' (the XLA recursion) "
                             "and/or Pallas modes, e.g. pallas_diagonal")
    parser.add_argument('--num-warps', default='',
                        help='comma-separated Triton warps per program of '
                             'the Pallas steps, one row each (default: each '
                             "kind's own: 8 for the diagonal kinds, 4 for "
                             'rows)')
    parser.add_argument('--loop-trips', default='',
                        help='comma-separated kernel=trips: the average trip '
                             'count of a looping kernel (e.g. a Pallas '
                             'diagonal step: h^2 / (2h - 1) rows per program '
                             'for an h x h output), for its issue estimate; '
                             'other loops are counted once')
    parser.add_argument('--out', default=None, help='CSV of the totals')
    parser.add_argument('--dump-root', default=None,
                        help='keep the XLA dumps here (default: a temporary '
                             'folder)')
    args = parser.parse_args(argv)
    try:
        loop_trips = {name: float(value) for name, value in
                      (item.split('=') for item in args.loop_trips.split(',')
                       if item)}
    except ValueError:
        parser.error(f'--loop-trips {args.loop_trips!r}: expected '
                     f'kernel=trips,... such as cntk_diag_conv_relu=16.25')
    results, matched = [], set()
    with tempfile.TemporaryDirectory() as scratch:
        root = Path(args.dump_root or scratch)
        for method in (args.empirical.split(',') if args.empirical else []):
            rows, convs = empirical_rows(method, args.side, args.n,
                                         args.wrn_k, root / f'empirical_{method}')
            print(f'== {method}, WRN-10-{args.wrn_k}, {args.n} images '
                  f'{args.side}x{args.side} (one call; XLA kernels, then the '
                  f'cuDNN convolutions)')
            print(format_table(sorted(rows, key=lambda r: -r.seconds)))
            conv_totals = convolution_summary(convs)
            print(f"cuDNN: {conv_totals['cudnn_calls']} convolutions, "
                  f"{conv_totals['cudnn_gflop']:.1f} GFLOP, "
                  f"{conv_totals['cudnn_tensor_core_calls']} on TF32 tensor "
                  f"cores, {conv_totals['cudnn_peak_us']:.1f} us at the "
                  f"peaks (FP32 {FP32_PEAK / 1e12:.0f}, TF32 "
                  f"{TF32_PEAK / 1e12:.0f} TFLOPS)")
            results.append(dict(arch=f'wrn10-{args.wrn_k}', variant=method,
                                side=args.side, n=args.n, pairs_per_step=1,
                                **{k: round(v, 4) for k, v in
                                   {**summary(rows), **conv_totals}.items()}))
        warps = [int(w) for w in args.num_warps.split(',') if w] or [None]
        for arch, mode, variant, warp in itertools.product(
                [] if args.empirical else args.arch.split(','),
                args.fast_kernel.split(','), args.variants.split(','),
                warps):
            fast_kernel = True if mode == 'true' else mode
            if mode == 'true' and warp != warps[0]:
                continue  # The XLA recursion has no warps: one row.
            warp = None if mode == 'true' else warp
            label = f'{mode}_{variant}' + (f'_w{warp}' if warp else '')
            rows, pairs = fastconv_rows(arch, args.side, args.n, variant,
                                        root / f'{arch}_{label}',
                                        fast_kernel, loop_trips, warp)
            matched |= {r.kernel for r in rows if r.trips is not None}
            name = (variant if mode == 'true' else f'{mode}_{variant}'
                    ) + (f'_w{warp}' if warp else '')
            print(f'== {arch}, {name} (per pair, one step of {pairs} pairs)')
            print(format_table(rows, pairs))
            results.append(dict(arch=arch, variant=name, side=args.side,
                                n=args.n, pairs_per_step=pairs,
                                **{k: round(v, 4) for k, v in
                                   summary(rows, pairs).items()},
                                **({'loop_trips': args.loop_trips}
                                   if loop_trips else {}),
                                **({'occupancy': occupancy(rows)}
                                   if find_ptxas() else {})))
    unmatched = sorted(set(loop_trips) - matched)
    if unmatched:
        parser.error(f'--loop-trips names {unmatched}, which no program '
                     f'here launches as a looping kernel: see the kernel '
                     f'names in the tables above')
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        with open(args.out, 'w', newline='') as f:
            writer = csv.DictWriter(f, fieldnames=list(results[0]))
            writer.writeheader()
            writer.writerows(results)
        print(f'wrote {args.out}')
    return 0


if __name__ == '__main__':
    sys.exit(main())
