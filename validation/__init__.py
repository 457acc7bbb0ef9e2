"""rdgap.validation: models, corpus, distortion metrics and the validate job.

Module map (one job each):

The validate pipeline (:func:`.runner.run_validation`, stage by stage)
    runner               the pipeline of stages; ``finalize`` adds the claims
    config               ValidateConfig, its checks, FITTED_VARIANTS, spread_splits
    jobs                 the run as independent jobs, and their shards
    architecture         one loaded task: windows, hidden states, fit contexts
    cache                hidden states computed once, reused by re-runs
    fit_stage            a fitted job's recipe fitted and calibrated at its level
    coding               one codec coding windows: bytes, estimate, T2 on every stream
    evaluation           code and evaluate: suffix on reconstructions, distortions
    row_statistics       the statistics stage (T10 of the prefix, codec statistics)
    other_text           fitted codecs measured again on other corpora
    rows                 RunRow, level_status, refusals: the rows of results.json
    cost_model           Stages and Work: wall time per stage and unit of work
    merge                shards combined into the run's result
    distributed          the job across processes with torch.distributed
Statistics of one codec at one split (``row["statistics"]``; keys in :mod:`.statistics`)
    statistics           codec_statistics, the entry point, and the key reference
    rate_statistics      T8 interval and the held-out bound of the measured rate
    rate_bounds          what the T8 interval is worth, documents needed, held-out helpers
    stream_range         B, the worst case of one stream
    stream_length        T2's proven length of a stream
    codec_domain         the domain a codec codes: quantizer, lattice, entropy model kind
    symbol_statistics    T3, T4, Gibbs on the sample, T6 of the symbols
    rademacher_statistics  T9's Rademacher statistics (never a bound)
    t7_statistics        T7's predicted rate (an approximation)
    jacobian_statistics  T10: entropy-model and prefix Jacobian norms (lower bounds)
    rate_prediction      the rate predicted from fit statistics
    prefix_map           the prefix as a differentiable map for T10
Claims and the report
    claims               the named claims, PASS or FAIL
    coverage, coverage_claims, synthetic  coverage of the bounds on synthetic sources
    correlation          rate against a statistic across splits
    other_text_claim, rate_prediction_claim, paper_claims  the claims of issue 19, the
                         rate prediction and the paper
    report, report_claims, levels, plots  results.json, report.md and its figures
Tasks, models and data
    tasks, task_kinds, task_fisher, encoder_task, vit_task, vit  the task adapters
    models, local_files, layer_split  models rdgap splits and where they live
    corpus, wikipedia    evaluation text
    distortion           distortions measured on the model's outputs
"""
