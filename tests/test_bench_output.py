"""tflite_isp.bench_output: two published benchmark_model outputs, and one constructed output per documented case.

Constructed outputs follow the line formats of the sources cited next to each (google-ai-edge/LiteRT unless named
otherwise); the numbers in them are made up.
"""
import json
import random

import pytest

from tflite_isp.devices import bench_output as bo

# https://github.com/tensorflow/tensorflow/issues/43541 (denoising model, Android native binary, --use_gpu=true;
# the lines as quoted in the issue)
GPU_SAMPLE = """\
adb shell /data/local/tmp/tflite/android_arm_benchmark_model --num_threads=4 --graph=/data/local/tmp/tflite/denoising_32bit.tflite --warmup_runs=1 --num_runs=50 --use_gpu=true --enable_op_profiling=true
INFO: Created TensorFlow Lite delegate for GPU.
INFO: Initialized OpenCL-based API.
INFO: Created 1 GPU delegate kernels.
Explicitly applied GPU delegate, and the model graph will be completely executed by the delegate.
The input model file size (MB): 7.07479
Initialized session in 870.557ms.
count=4 first=130565 curr=120829 min=117370 max=130565 avg=122373 std=4930
count=50 first=119212 curr=118055 min=113737 max=124776 avg=119375 std=1948
Inference timings in us: Init: 870557, First inference: 130565, Warmup (avg): 122373, Inference (avg): 119375
"""  # noqa: E501

# https://github.com/tensorflow/tensorflow/issues/56301 (benchmark APK, logcat prefixes removed in the issue;
# the line '…' marks omitted lines)
NNAPI_SAMPLE = """\
Running TensorFlow Lite benchmark with args: --graph=/data/local/tmp/model.tflite --warmup_runs=1 --num_runs=50 --enable_op_profiling=true --use_xnnpack=false --use_nnapi=true
NNAPI accelerators available: [ipuadaptor,nnapi-reference]
…
Though NNAPI delegate is explicitly applied, the model graph will not be executed by the delegate
"""  # noqa: E501

# Prefixes: tflite/tools/logging.h ("INFO: "), tflite/minimal_logging_android.cc ("VERBOSE: "); banner, stats lines
# and memory lines: tflite/tools/benchmark/benchmark_model.cc (Run, BenchmarkLoggingListener::OnBenchmarkEnd);
# p5/median/p95: xla/tsl/util/stats_calculator.h (StatWithPercentiles::OutputToStream); "Replacing ...":
# tflite/core/subgraph.cc (ReplaceNodeSubsetsWithDelegateKernels).
CPU_RUN = """\
INFO: STARTING!
INFO: Log parameter values verbosely: [0]
INFO: Num threads: [4]
INFO: Graph: [/data/local/tmp/tflite_isp/pynet.tflite]
INFO: Report the peak memory footprint: [1]
INFO: Loaded model /data/local/tmp/tflite_isp/pynet.tflite
INFO: Created TensorFlow Lite XNNPACK delegate for CPU.
VERBOSE: Replacing 31 out of 31 node(s) with delegate (TfLiteXNNPackDelegate) node, yielding 1 partitions for subgraph 0.
INFO: The input model file size (MB): 3.54921
INFO: Initialized session in 48.212ms.
INFO: Running benchmark for at least 1 iterations and at least 0.5 seconds but terminate if exceeding 150 seconds.
INFO: count=12 first=45210 curr=41002 min=40876 max=45210 avg=41650.2 std=1190 p5=40876 median=41320 p95=45210

INFO: Running benchmark for at least 50 iterations and at least 1 seconds but terminate if exceeding 150 seconds.
INFO: count=50 first=41105 curr=40987 min=40512 max=43876 avg=41234.5 std=612 p5=40601 median=41102 p95=42877

INFO: Inference timings in us: Init: 48212, First inference: 45210, Warmup (avg): 41650.2, Inference (avg): 41234.5
INFO: Note: as the benchmark tool itself affects memory footprint, the following is only APPROXIMATE to the actual memory footprint of the model at runtime. Take the information at your discretion.
INFO: Memory footprint delta from the start of the tool (MB): init=12.5 overall=30.125
INFO: Overall peak memory footprint (MB) via periodic monitoring: 42.3828
INFO: Memory status at the end of exeution:
INFO: - VmRSS              : 44 MB
INFO: + RssAnnon           : 31 MB
INFO: + RssFile + RssShmem : 13 MB
"""  # noqa: E501

# std::ostream's default precision prints doubles of 1e6 and more in scientific notation (tensorflow#59997);
# memory deltas may be negative (benchmark_model.cc prints mem_footprint_kb / 1024.0 of a difference).
SCIENTIFIC = """\
INFO: Initialized session in 2513.7ms.
INFO: count=2 first=1612380 curr=1448120 min=1448120 max=1612380 avg=1.53025e+06 std=82130
INFO: count=50 first=1512345 curr=1519876 min=1501234 max=1.55e+06 avg=1.52e+06 std=8123.4
INFO: Inference timings in us: Init: 2.5137e+06, First inference: 1.61238e+06, Warmup (avg): 1.53025e+06, Inference (avg): 1.52e+06
INFO: Memory footprint delta from the start of the tool (MB): init=-0.0078125 overall=1.5e+02
"""  # noqa: E501

# TF <= ~2.2: benchmark_model.cc printed "Average inference timings in us"; older builds "no stats: <avg>" for the
# inference average, and a "count=1 curr=<us>" line for a single run (stats_calculator.h, Stat::OutputToStream).
LEGACY = """\
Initialized session in 38.467ms
Running benchmark for at least 1 iterations and at least 0.5 seconds
count=6 first=83235 curr=82871 min=82011 max=84990 avg=83235 std=1011

Running benchmark for at least 50 iterations and at least 1 seconds
count=50 first=80011 curr=79555 min=78800 max=81544 avg=79760.9 std=612

Average inference timings in us: Warmup: 83235, Init: 38467, Inference: 79760.9
"""
LEGACY_NO_STATS = """\
Initialized session in 4.452ms
Running benchmark for 1 iterations
count=1 curr=146161

Running benchmark for 50 iterations
count=50 first=137789 curr=137254 min=137079 max=143416 avg=137722 std=896

Average inference timings in us: Warmup: 146161, Init: 4452, no stats: 137722
"""

# litert/tools/benchmark_litert_model.h (BenchmarkLoggingListener::OnBenchmarkEnd): LITERT_LOG prints
# "INFO: [file:line] " (litert/c/litert_logging.h), and the block's first and "Memory Usage:" lines start with "\n".
# The stats lines come from the shared tflite/tools/benchmark/benchmark_model.cc.
LITERT = """\
INFO: count=24 first=35120 curr=20810 min=20402 max=35120 avg=21070 std=2950 p5=20455 median=20601 p95=22190

INFO: count=50 first=20911 curr=20388 min=19800 max=23410 avg=20550 std=610 p5=19876 median=20490 p95=21980

INFO: [benchmark_litert_model.h:76] 
========== BENCHMARK RESULTS ==========
INFO: [benchmark_litert_model.h:77] Model initialization: 250.41 ms
INFO: [benchmark_litert_model.h:78] Warmup (first):       35.12 ms
INFO: [benchmark_litert_model.h:80] Warmup (avg):         21.07 ms (24 runs)
INFO: [benchmark_litert_model.h:82] Inference (avg):      20.55 ms (50 runs)
INFO: [benchmark_litert_model.h:86] Inference (min):      19.80 ms
INFO: [benchmark_litert_model.h:88] Inference (max):      23.41 ms
INFO: [benchmark_litert_model.h:90] Inference (std):      0.61
INFO: [benchmark_litert_model.h:98] Throughput:           85.31 MB/s
INFO: [benchmark_litert_model.h:107] 
Memory Usage:
INFO: [benchmark_litert_model.h:108] Init footprint:       60.25 MB
INFO: [benchmark_litert_model.h:110] Overall footprint:    75.50 MB
INFO: [benchmark_litert_model.h:115] Peak memory:          92.75 MB
INFO: [benchmark_litert_model.h:121] ======================================

"""  # noqa: W291

# tflite/delegates/gpu/common/model_builder.cc (GetOpsToReplace): one multi-line kernel log ("ERROR: " before the
# first line only), "OP: reason" lines; the reasons are that file's own strings. The verdict:
# tflite/tools/benchmark/benchmark_tflite_model.cc (BenchmarkTfLiteModel::Init).
GPU_PARTIAL_HEAD = """\
INFO: Created TensorFlow Lite delegate for GPU.
ERROR: Following operations are not supported by GPU delegate:
RESIZE_BILINEAR: Operation is not supported.
STRIDED_SLICE: OP is supported, but tensor type/shape isn't compatible.
41 operations will run on the GPU, and the remaining 7 operations will run on the CPU.
VERBOSE: Replacing 41 out of 48 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 5 partitions for subgraph 0.
INFO: Initialized OpenCL-based API.
INFO: Created 3 GPU delegate kernels.
INFO: Explicitly applied GPU delegate, and the model graph will be partially executed by the delegate w/ 3 delegate kernels.
"""  # noqa: E501
TIMINGS = """\
INFO: The input model file size (MB): 7.07479
INFO: Initialized session in 870.557ms.
INFO: count=4 first=130565 curr=120829 min=117370 max=130565 avg=122373 std=4930
INFO: count=50 first=119212 curr=118055 min=113737 max=124776 avg=119375 std=1948
INFO: Inference timings in us: Init: 870557, First inference: 130565, Warmup (avg): 122373, Inference (avg): 119375
"""

# tflite/delegates/nnapi/nnapi_delegate.cc (StatefulNnApiDelegate::DoPrepare, NNAPI_VERBOSE_VALIDATION builds):
# TFLITE_LOG_PROD(TFLITE_LOG_WARNING, "Operator %s (v%d) refused by NNAPI delegate: %s"); the accelerator list:
# tflite/tools/delegates/nnapi_delegate_provider.cc. The refusal reasons are made up.
NNAPI_REFUSALS = """\
INFO: NNAPI accelerators available: [qti-dsp,qti-gpu,nnapi-reference]
INFO: Created TensorFlow Lite delegate for NNAPI.
WARNING: Operator TRANSPOSE_CONV (v3) refused by NNAPI delegate: Android sdk version less than 29
WARNING: Operator PRELU (v1) refused by NNAPI delegate: Android sdk version less than 29
WARNING: Operator PRELU (v1) refused by NNAPI delegate: Android sdk version less than 29
VERBOSE: Replacing 20 out of 26 node(s) with delegate (TfLiteNnapiDelegate) node, yielding 7 partitions for subgraph 0.
INFO: Explicitly applied NNAPI delegate, and the model graph will be partially executed by the delegate w/ 3 delegate kernels.
"""  # noqa: E501

# model_builder.cc's "No operations will run on the GPU" form, then benchmark_tflite_model.cc's "Though ...".
GPU_NOTHING = """\
ERROR: Following operations are not supported by GPU delegate:
CONV_2D: OP is supported, but tensor type/shape isn't compatible.
DEQUANTIZE:
No operations will run on the GPU, and all 65 operations will run on the CPU.
INFO: Created 0 GPU delegate kernels.
INFO: Though GPU delegate is explicitly applied, the model graph will not be executed by the delegate.
""" + TIMINGS

# tflite/delegates/gpu/delegate.cc ("TfLiteGpuDelegate Init: %s"), tflite/core/subgraph.cc ("Node number %d (%s)
# failed to prepare.", "Restored original execution plan after delegate application failure."),
# benchmark_tflite_model.cc ("Failed to apply GPU delegate."), benchmark_main.cc ("Benchmarking failed.").
GPU_FAILED = """\
INFO: Loaded model /data/local/tmp/tflite_isp/pynet.tflite
INFO: Created TensorFlow Lite delegate for GPU.
VERBOSE: Replacing 48 out of 48 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 1 partitions for subgraph 0.
ERROR: TfLiteGpuDelegate Init: FULLY_CONNECTED: Amount of input data should match weights width
INFO: Created 0 GPU delegate kernels.
ERROR: TfLiteGpuDelegate Prepare: delegate is not initialized
ERROR: Node number 48 (TfLiteGpuDelegateV2) failed to prepare.
ERROR: Restored original execution plan after delegate application failure.
ERROR: Failed to apply GPU delegate.
ERROR: Benchmarking failed.
"""  # noqa: E501


def test_published_gpu_sample_every_number():
    out = bo.parse(GPU_SAMPLE)
    assert (out.format, out.complete) == ("classic", True)
    assert out.model_size_mb == pytest.approx(7.07479)
    assert out.init_ms == pytest.approx(870.557)
    assert out.first_ms == pytest.approx(130.565)
    assert out.warmup_avg_ms == pytest.approx(122.373)
    assert out.avg_ms == pytest.approx(119.375)
    assert out.warmup == bo.RunStats(4, pytest.approx(130.565), pytest.approx(120.829), pytest.approx(117.370),
                                     pytest.approx(130.565), pytest.approx(122.373), pytest.approx(4.930))
    assert out.timed == bo.RunStats(50, pytest.approx(119.212), pytest.approx(118.055), pytest.approx(113.737),
                                    pytest.approx(124.776), pytest.approx(119.375), pytest.approx(1.948))
    assert (out.min_ms, out.max_ms, out.std_ms) == pytest.approx((113.737, 124.776, 1.948))
    assert out.median_ms is None and out.p95_ms is None and out.ms == pytest.approx(119.375)
    assert (out.runs, out.warmup_runs) == (50, 4)
    assert out.init_memory_mb is None and out.peak_memory_mb is None
    assert out.delegations == (bo.Delegation("GPU", "full", kernels=1, explicit=True),)
    assert out.accelerators == () and out.errors == ()
    assert out.last_line.startswith("Inference timings in us: Init: 870557")
    assert bo.diagnose(out, 0) is None and bo.delegation_note(out) is None


def test_published_nnapi_sample_is_the_cpu_fallback():
    out = bo.parse(NNAPI_SAMPLE)
    assert out.accelerators == ("ipuadaptor", "nnapi-reference")
    assert out.delegations == (bo.Delegation("NNAPI", "none", explicit=True),)
    assert bo.delegation_note(out) == "NNAPI delegate applied to nothing: these timings are the CPU fallback"
    assert not out.complete and out.avg_ms is None and out.errors == ()
    assert bo.diagnose(out) == ("output ended before the timings (last line: 'Though NNAPI delegate is explicitly "
                                "applied, the model graph will not be executed by the delegate')")


def test_classic_with_percentiles_and_memory():
    out = bo.parse(CPU_RUN)
    assert (out.format, out.complete, out.runs, out.warmup_runs) == ("classic", True, 50, 12)
    assert (out.init_ms, out.first_ms, out.warmup_avg_ms, out.avg_ms) == pytest.approx(
        (48.212, 45.210, 41.6502, 41.2345))
    assert out.timed.p5_ms == pytest.approx(40.601) and out.warmup.median_ms == pytest.approx(41.320)
    assert (out.p5_ms, out.median_ms, out.p95_ms) == pytest.approx((40.601, 41.102, 42.877))
    assert out.ms == pytest.approx(41.102)  # the median, not the mean
    assert (out.init_memory_mb, out.overall_memory_mb, out.peak_memory_mb) == pytest.approx((12.5, 30.125, 42.3828))
    # TFLite's default XNNPACK delegate is recorded but not flagged: nobody asked for it
    assert out.delegations == (bo.Delegation("XNNPACK", "full", nodes=(31, 31), partitions=1),)
    assert bo.delegation_note(out) is None and bo.diagnose(out, 0) is None
    assert out.errors == () and out.last_line == "+ RssFile + RssShmem : 13 MB"
    part = bo.parse(CPU_RUN.replace("Replacing 31 out of 31", "Replacing 28 out of 31").replace("1 partitions", "3 "
                                                                                               "partitions"))
    assert part.delegations[0].verdict == "partial" and bo.delegation_note(part) is None


def test_scientific_notation_and_negative_memory():
    out = bo.parse(SCIENTIFIC)
    assert (out.init_ms, out.first_ms, out.warmup_avg_ms, out.avg_ms) == pytest.approx(
        (2513.7, 1612.38, 1530.25, 1520.0))
    assert out.timed.max_ms == pytest.approx(1550.0) and out.warmup.avg_ms == pytest.approx(1530.25)
    assert (out.init_memory_mb, out.overall_memory_mb) == pytest.approx((-0.0078125, 150.0))
    assert bo.diagnose(out) is None


def test_legacy_formats():
    out = bo.parse(LEGACY)
    assert (out.format, out.complete, out.runs) == ("legacy", True, 50)
    assert (out.init_ms, out.warmup_avg_ms, out.avg_ms) == pytest.approx((38.467, 83.235, 79.7609))
    assert out.first_ms == pytest.approx(83.235)  # from the warm-up stats line: the summary has no first run
    assert bo.diagnose(out) is None
    old = bo.parse(LEGACY_NO_STATS)
    assert (old.format, old.complete) == ("legacy", True)
    assert (old.init_ms, old.warmup_avg_ms, old.avg_ms) == pytest.approx((4.452, 146.161, 137.722))
    assert old.warmup == bo.RunStats(1, *[pytest.approx(146.161)] * 5, 0.0)  # "count=1 curr=146161"
    summary_only = bo.parse(LEGACY_NO_STATS.splitlines()[-1])
    assert summary_only.avg_ms == pytest.approx(137.722) and summary_only.timed is None


def test_litert_results_block():
    out = bo.parse(LITERT)
    assert (out.format, out.complete, out.runs, out.warmup_runs) == ("litert", True, 50, 24)
    assert (out.init_ms, out.first_ms, out.warmup_avg_ms, out.avg_ms) == pytest.approx((250.41, 35.12, 21.07, 20.55))
    assert (out.min_ms, out.max_ms, out.std_ms) == pytest.approx((19.80, 23.41, 0.61))
    assert out.throughput_mb_s == pytest.approx(85.31)
    assert (out.init_memory_mb, out.overall_memory_mb, out.peak_memory_mb) == pytest.approx((60.25, 75.5, 92.75))
    assert out.median_ms == pytest.approx(20.49) and out.ms == pytest.approx(20.49)  # from the stats line
    assert bo.diagnose(out) is None
    block_only = bo.parse(LITERT.split("\n\n", 2)[2])
    assert block_only.median_ms is None and block_only.ms == pytest.approx(20.55) and block_only.complete
    assert (block_only.runs, block_only.warmup_runs) == (50, 24)


def test_logcat_framing_threadtime_and_brief():
    plain = bo.strip_framing(GPU_SAMPLE)
    lines = [line.removeprefix("INFO: ") for line in GPU_SAMPLE.splitlines()]
    threadtime = "--------- beginning of main\r\n" + "".join(
        f"11-22 10:00:00.{k:03d}  4321  4339 I tflite  : {line}\r\n" for k, line in enumerate(lines))
    brief = "".join(f"I/tflite  ( 4321): {line}\r\n" for line in lines)
    time = "".join(f"11-22 10:00:00.123 I/tflite  ( 4321): {line}\n" for line in lines)
    for text in (threadtime, brief, time):
        assert bo.strip_framing(text) == plain
        assert bo.parse(text) == bo.parse(GPU_SAMPLE)
    assert bo.strip_framing("E tflite  : x\n11-22 10:00:00.123  1 2 E tflite  : ERROR: y\n") == ["E tflite  : x",
                                                                                              "ERROR: y"]


def test_partial_gpu_delegation():
    out = bo.parse(GPU_PARTIAL_HEAD + TIMINGS)
    gpu, = out.delegations
    assert (gpu.verdict, gpu.kernels, gpu.nodes, gpu.partitions) == ("partial", 3, (41, 48), 5)
    assert gpu.unsupported_ops == ("RESIZE_BILINEAR", "STRIDED_SLICE")
    assert gpu.messages == ("Following operations are not supported by GPU delegate:",
                            "RESIZE_BILINEAR: Operation is not supported.",
                            "STRIDED_SLICE: OP is supported, but tensor type/shape isn't compatible.",
                            "41 operations will run on the GPU, and the remaining 7 operations will run on the CPU.")
    assert out.errors == ()  # the list is printed as ERROR: but is not a failure
    assert bo.delegation_note(out) == ("GPU delegate partial (3 kernels, 41 of 48 nodes; unsupported: RESIZE_BILINEAR,"
                                       " STRIDED_SLICE)")
    assert bo.diagnose(out, 0) is None and out.avg_ms == pytest.approx(119.375)


def test_replacing_line_variants():
    # older tflite/core/subgraph.cc: no "out of"; one partition means every node went to the delegate
    old = bo.parse("INFO: Replacing 48 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 1 partitions.")
    assert old.delegations == (bo.Delegation("GPU", "full", nodes=(48, None), partitions=1),)
    split = bo.parse("INFO: Replacing 40 node(s) with delegate (TfLiteGpuDelegateV2) node, yielding 3 partitions.")
    assert split.delegations[0].verdict == "partial"
    # LiteRT's own GPU accelerator (as quoted from a logcat): no " node" after the kernel name
    litert = bo.parse("I tflite  : Replacing 572 out of 1789 node(s) with delegate (LITERT_CL), yielding 2 partitions")
    assert litert.delegations == (bo.Delegation("GPU", "partial", nodes=(572, 1789), partitions=2),)


def test_nnapi_refusals_name_the_ops():
    second_subgraph = ("VERBOSE: Replacing 2 out of 2 node(s) with delegate (TfLiteNnapiDelegate) node, yielding 1 "
                       "partitions for subgraph 1.\n")
    out = bo.parse(NNAPI_REFUSALS + second_subgraph + TIMINGS)
    nnapi, = out.delegations
    assert out.accelerators == ("qti-dsp", "qti-gpu", "nnapi-reference")
    assert (nnapi.verdict, nnapi.kernels, nnapi.nodes, nnapi.partitions) == ("partial", 3, (20, 26), 7)
    assert nnapi.unsupported_ops == ("TRANSPOSE_CONV", "PRELU") and len(nnapi.messages) == 3
    assert nnapi.messages[0] == ("Operator TRANSPOSE_CONV (v3) refused by NNAPI delegate: Android sdk version less "
                                 "than 29")
    assert bo.delegation_note(out) == ("NNAPI delegate partial (3 kernels, 20 of 26 nodes; unsupported: "
                                       "TRANSPOSE_CONV, PRELU)")
    assert out.errors == () and bo.diagnose(out) is None


def test_two_runs_in_one_output_report_the_last():
    out = bo.parse(TIMINGS + CPU_RUN)
    assert (out.warmup.count, out.timed.median_ms, out.avg_ms) == (12, pytest.approx(41.102), pytest.approx(41.2345))


def test_truncated_after_the_warmup_stats():
    text = CPU_RUN.split("INFO: Running benchmark for at least 50")[0]
    out = bo.parse(text)
    assert (out.format, out.complete) == ("classic", False)
    assert out.warmup.count == 12 and out.timed is None and out.avg_ms is None and out.ms is None
    assert out.first_ms == pytest.approx(45.210)  # what there is, is kept
    assert bo.diagnose(out) == ("output ended before the timings (last line: 'count=12 first=45210 curr=41002 "
                                "min=40876 max=45210 avg=41650.2 std=1190 p5=40876 median=41320 p95=45210')")


def test_crash_mid_run():
    text = TIMINGS.split("INFO: count=50")[0] + "Segmentation fault \n"
    out = bo.parse(text)
    assert out.errors == ("Segmentation fault",) and not out.complete
    assert bo.diagnose(out, 139) == ("crashed mid-run (Segmentation fault, exit 139 = SIGSEGV) after 'count=4 "
                                     "first=130565 curr=120829 min=117370 max=130565 avg=122373 std=4930'")
    # Python's subprocess reports a signal as a negative code, and the shell's message may be missing
    bare = bo.parse(TIMINGS.split("INFO: count=50")[0])
    assert bo.diagnose(bare, -6) == ("crashed mid-run (exit -6 = SIGABRT) after 'count=4 first=130565 curr=120829 "
                                     "min=117370 max=130565 avg=122373 std=4930'")
    assert bo.diagnose(bare, 137).startswith("crashed mid-run (exit 137 = SIGKILL)")
    assert bo.diagnose(bo.parse(TIMINGS), 139) == "crashed after printing the timings (exit 139 = SIGSEGV)"


def test_missing_binary_and_permission():
    not_found = "/system/bin/sh: /data/local/tmp/tflite_isp/benchmark_model: not found\n"
    out = bo.parse(not_found)
    assert bo.diagnose(out, 127) == ("benchmark_model not found on the device (exit 127: '/system/bin/sh: "
                                     "/data/local/tmp/tflite_isp/benchmark_model: not found')")
    denied = bo.parse("/system/bin/sh: /data/local/tmp/tflite_isp/benchmark_model: can't execute: Permission denied")
    assert bo.diagnose(denied, 126).startswith("permission denied running benchmark_model (exit 126: ")


def test_delegate_that_applied_to_nothing():
    out = bo.parse(GPU_NOTHING)
    gpu, = out.delegations
    assert (gpu.verdict, gpu.nodes, gpu.unsupported_ops) == ("none", (0, 65), ("CONV_2D", "DEQUANTIZE"))
    assert bo.diagnose(out, 0) is None  # the timings are real, only not the GPU's
    assert bo.delegation_note(out) == ("GPU delegate applied to nothing: these timings are the CPU fallback "
                                       "(unsupported: CONV_2D, DEQUANTIZE)")


def test_delegate_that_failed_to_apply():
    out = bo.parse(GPU_FAILED)
    gpu, = out.delegations
    assert (gpu.verdict, gpu.failed, gpu.nodes) == ("none", True, (48, 48))
    assert len(out.errors) == 6 and not out.complete
    assert bo.diagnose(out, 1) == ("the GPU delegate failed to apply (TfLiteGpuDelegate Init: FULLY_CONNECTED: Amount "
                                   "of input data should match weights width)")
    assert bo.delegation_note(out) == "GPU delegate failed to apply"
    cut = bo.parse("ERROR: Following operations are not supported by GPU delegate:\nMEAN: Operation is not "
                   "supported.\nERROR: Failed to apply GPU delegate.\n")  # a list without its closing count
    assert cut.delegations[0].unsupported_ops == ("MEAN",) and cut.errors == ("ERROR: Failed to apply GPU delegate.",)


def test_model_load_and_full_delegation_failures():
    # tensorflow/tensorflow tensorflow/lite/tools/benchmark/benchmark_tflite_model.cc (LoadModel), and
    # benchmark_tflite_model.cc (Init) with --require_full_delegation
    missing = bo.parse("INFO: STARTING!\nERROR: Failed to mmap model /data/local/tmp/x.tflite\n"
                       "ERROR: Benchmarking failed.\n")
    assert bo.diagnose(missing, 1) == "could not load the model (Failed to mmap model /data/local/tmp/x.tflite)"
    strict = bo.parse(GPU_PARTIAL_HEAD.rsplit("INFO: Explicitly", 1)[0] + "ERROR: Disallowed CPU fallback detected.\n")
    assert bo.diagnose(strict, 1) == ("full delegation was required but part of the model fell back to the CPU "
                                      "(Disallowed CPU fallback detected.); GPU delegate partial (41 of 48 nodes; "
                                      "unsupported: RESIZE_BILINEAR, STRIDED_SLICE)")


def test_empty_output():
    out = bo.parse("")
    assert (out.format, out.complete, out.last_line, out.errors) == ("unknown", False, None, ())
    assert bo.diagnose(out) == "no output" and bo.diagnose(out, 1) == "no output (exit 1)"
    assert bo.delegation_note(out) is None and bo.parse("\r\n\n  \n") == out


def test_garbage_never_raises():
    garbage = ("\x00\xff count=abc first=1e999999 curr=nan\nInference timings in us: Init: x, Inference (avg): -nan\n"
               "====\n========== BENCHMARK RESULTS ==========\nReplacing 1 node(s) with delegate () node\n"
               "Following operations are not supported by GPU delegate:\n: :\nlorem ipsum\n"
               f"Replacing {'9' * 5000} node(s) with delegate (x) node, yielding 1 partitions\ncount={'7' * 5000}\n")
    out = bo.parse(garbage)
    assert out.avg_ms is None and isinstance(bo.diagnose(out), str)
    assert bo.diagnose(bo.parse("lorem ipsum\ndolor sit amet")) == ("no benchmark timings in the output (last line: "
                                                                    "'dolor sit amet')")
    assert bo.parse(b"count=3 curr=5\n").warmup.count == 3 and bo.parse(None).format == "unknown"
    rng = random.Random(0)
    texts = [GPU_SAMPLE, NNAPI_SAMPLE, CPU_RUN, SCIENTIFIC, LEGACY, LITERT, GPU_NOTHING, GPU_FAILED, garbage]
    for _ in range(300):
        text = rng.choice(texts)
        lines = text.splitlines()
        rng.shuffle(lines)
        for variant in (text[:rng.randrange(len(text) + 1)], "\n".join(lines), text.replace(" ", rng.choice("=:(\t"))):
            out = bo.parse(variant)
            json.dumps(out.to_dict())
            for note in (bo.diagnose(out, rng.choice([None, 0, 1, 127, 139, -9])), bo.delegation_note(out)):
                assert note is None or isinstance(note, str) and "\n" not in note


def test_to_dict_is_json_ready():
    d = bo.parse(GPU_PARTIAL_HEAD + TIMINGS).to_dict()
    assert json.loads(json.dumps(d)) == d
    assert d["ms"] == pytest.approx(119.375) and d["timed"]["count"] == 50
    assert d["delegations"][0]["unsupported_ops"] == ["RESIZE_BILINEAR", "STRIDED_SLICE"]
    assert d["delegations"][0]["nodes"] == [41, 48] and isinstance(d["errors"], list)
