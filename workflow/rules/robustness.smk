rule robustness:
    """Common corruptions (the official CIFAR-C files where the config names their folder, else
    generated in code) and FGSM/PGD attacks. The official folder is an input: adding it later reruns
    the robustness jobs and nothing else."""
    input:
        model=f"{RESULTS}/{{run}}/model.pt",
        record=f"{RESULTS}/{{run}}/run.json",
        data=run_test_split,
        official=official_corruptions,
    output:
        f"{RESULTS}/{{run}}/robustness.json",
    log:
        "logs/robustness/{run}.log",
    benchmark:
        f"{RESULTS}/benchmarks/robustness/{{run}}.tsv"
    conda:
        "../envs/orthoreg.yaml"
    threads: config["threads"]
    resources:
        gpu=1 if config["gpu_resource"] else 0,
    params:
        run=lambda wildcards, output: parent(output[0]),
        data=lambda wildcards, input: parent(input.data[0], 2),
        official=cifar_c_flag,
        args=ROBUSTNESS_ARGS,
    shell:
        "OMP_NUM_THREADS={threads} orthoreg robustness --run {params.run} --data-dir {params.data}"
        " {params.official} {params.args} > {log} 2>&1"
