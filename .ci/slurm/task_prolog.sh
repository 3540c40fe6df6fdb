#!/bin/sh
# SLURM TaskProlog: a "print" line goes into the task's output (the job's log file), recording
# which GPU index SLURM gave the task. tests/test_slurm.py reads these lines.
echo "print orthoreg-ci-task job=${SLURM_JOB_ID:-none} step=${SLURM_STEP_ID:-none} CUDA_VISIBLE_DEVICES=${CUDA_VISIBLE_DEVICES:-unset}"
