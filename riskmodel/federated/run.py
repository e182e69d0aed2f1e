"""Orchestration: data -> roles -> alignment -> federated binning -> federated LR -> scorecard.

``federated_fit`` is the library call (two frames, their row keys, the labels): it runs the whole
protocol between a :class:`~riskmodel.federated.parties.Guest`, a
:class:`~riskmodel.federated.parties.Host` and an :class:`~riskmodel.federated.parties.Arbiter`
over one :class:`~riskmodel.federated.channel.Channel` and returns an ordinary
:class:`riskmodel.models.Scorecard` (points, ``table()``) plus the message log.
``centralized_fit`` runs the same pipeline on pooled data, in the clear, for comparison.
``federated_train`` (the ``riskmodel federated-train`` command) does both on a data-hub directory
with the out-of-time split of ``riskmodel train``, packages a :class:`~riskmodel.creditmodel.CreditModel`
and logs the run to MLflow.

Roles on the data hub's feature matrix: the bank (guest) holds the labels, the application rows and
the catalog families a traditional credit process sees (``finance``, ``firm``: statements,
collateral coverage, firm age and size); the hub (host) holds every other signal and data product.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract import BASELINE_FAMILIES, TARGET
from riskmodel import evaluation as ev
from riskmodel.binning import MonotonicBinner
from riskmodel.errors import UserError
from riskmodel.federated import lr as flr
from riskmodel.federated.alignment import align
from riskmodel.federated.channel import Channel
from riskmodel.federated.parties import Arbiter, Guest, Host

log = logging.getLogger(__name__)

DEFAULTS = dict(max_prebins=20, min_bin_share=0.05, smoothing=0.5, unknown_direction="auto", min_iv=0.02, max_corr=0.7, C=1.0)


def split_roles(catalog: pd.DataFrame, features) -> tuple[list[str], list[str]]:
    """(bank features, hub features): bank = the families a bank holds itself (statements and the
    firm record, ``features.contract.BASELINE_FAMILIES``), hub = the rest."""
    fam = catalog.set_index("name")["family"]
    unknown = [f for f in features if f not in fam.index]
    if unknown:
        raise UserError(f"features not in the catalog, so no role can be assigned: {unknown[:10]}")
    bank = [f for f in features if fam[f] in BASELINE_FAMILIES]
    hub = [f for f in features if fam[f] not in BASELINE_FAMILIES]
    if not bank or not hub:
        raise UserError(f"federated training needs features on both sides; bank has {len(bank)}, hub has {len(hub)}")
    return bank, hub


def assemble_scorecard(bins: dict, selected: list[str], coef, intercept: float, directions: dict,
                       iv: pd.Series, dropped: dict, params: dict | None = None):
    """A fitted :class:`riskmodel.models.Scorecard` from given bins (``VariableBinning`` per
    feature), coefficients and intercept: the same object ``Scorecard.fit`` produces, so points,
    ``table()``, contributions and ``CreditModel`` work unchanged. Inputs are the selected features.

    """
    from riskmodel.models import Scorecard

    p = {**DEFAULTS, **(params or {})}
    return Scorecard.from_parts(
        {c: bins[c] for c in selected}, np.asarray(coef, dtype="float64"), float(intercept), iv=iv, dropped=dropped,
        directions={f: int(directions.get(f, 0)) for f in selected}, max_prebins=p["max_prebins"],
        min_bin_share=p["min_bin_share"], unknown_direction=p["unknown_direction"], min_iv=p["min_iv"],
        max_corr=p["max_corr"], sign_check=True, C=p["C"],
    )


def federated_fit(bank_X: pd.DataFrame, bank_keys, y, hub_X: pd.DataFrame, hub_keys, directions: dict, *,
                  key_bits: int = 2048, plaintext: bool = False, mode: str = "exact", batch_size: int = 1000,
                  max_epochs: int = 15, seed: int | None = None, params: dict | None = None,
                  channel: Channel | None = None) -> dict:
    """Run alignment, federated binning and federated LR; return the scorecard and the record.

    ``bank_X``/``bank_keys``/``y`` are the bank's rows, ``hub_X``/``hub_keys`` the hub's; keys are
    the entity keys (:func:`riskmodel.federated.alignment.row_keys`). ``plaintext=True`` runs the
    same protocol and messages without encryption (the benchmark's baseline).
    """
    p = {**DEFAULTS, **(params or {})}
    t0 = time.perf_counter()
    channel = channel if channel is not None else Channel()
    guest = Guest(channel, bank_X, y, directions, plaintext=plaintext, key_bits=key_bits,
                  max_prebins=p["max_prebins"], min_bin_share=p["min_bin_share"], smoothing=p["smoothing"],
                  unknown_direction=p["unknown_direction"], seed=seed)
    host = Host(channel, hub_X, plaintext=plaintext, max_prebins=p["max_prebins"])
    phases: dict[str, float] = {}

    t = time.perf_counter()
    g_rows, h_rows, align_summary = align(channel, bank_keys, hub_keys)
    guest.keep_rows(g_rows)
    host.keep_rows(h_rows)
    phases["alignment"] = time.perf_counter() - t

    t = time.perf_counter()
    arbiter = Arbiter(channel, key_bits=key_bits, plaintext=plaintext)
    arbiter.publish_key()
    guest.receive_training_key()
    host.receive_training_key()
    phases["keys"] = time.perf_counter() - t

    t = time.perf_counter()
    guest.binning_start()
    host.binning_sums()
    guest.binning_finish()
    guest.select(p["min_iv"], p["max_corr"])
    host.receive_model_features()
    phases["binning"] = time.perf_counter() - t

    t = time.perf_counter()
    fit = flr.train(guest, host, arbiter, mode=mode, batch_size=batch_size, C=p["C"], max_epochs=max_epochs)
    phases["training"] = time.perf_counter() - t

    t = time.perf_counter()
    guest.request_splits()
    host.publish_splits()
    host_bins = guest.receive_splits()
    phases["publication"] = time.perf_counter() - t

    order = guest.own_features_ + guest.host_features_
    theta = fit["theta"]
    bins = {**{c: guest.own_binner_.bins_[c] for c in guest.own_features_}, **host_bins}
    scorecard = assemble_scorecard(bins, order, theta[:-1], theta[-1], directions, guest.iv_, guest.dropped_, p)
    wall = time.perf_counter() - t0
    timers = {party.name: party.timer.as_dict() for party in (guest, host, arbiter)}
    return {
        "scorecard": scorecard, "theta": theta, "features": order, "own_features": guest.own_features_,
        "host_features": guest.host_features_, "channel": channel, "alignment": align_summary,
        "aligned_rows": {"guest": g_rows, "host": h_rows}, "fit": fit, "phases": phases, "timers": timers,
        "seconds": wall, "mode": mode, "key_bits": None if plaintext else key_bits,
    }


def centralized_fit(X: pd.DataFrame, y, bank_features: list[str], directions: dict, params: dict | None = None) -> dict:
    """The same pipeline on pooled data, in the clear: MonotonicBinner, the same selection rule
    (correlation filter among the bank's features only), the same non-negative L2 logistic
    regression solved to convergence. Returns the scorecard and its parts."""
    p = {**DEFAULTS, **(params or {})}
    y = np.asarray(y, dtype="int64")
    binner = MonotonicBinner(directions={c: int(directions.get(c, 0)) for c in X.columns}, max_prebins=p["max_prebins"],
                             min_bin_share=p["min_bin_share"], unknown_direction=p["unknown_direction"],
                             smoothing=p["smoothing"]).fit(X, y)
    W = binner.transform(X)
    iv = binner.iv()
    selected, dropped = flr.select_features(iv, W[[c for c in X.columns if c in bank_features]], p["min_iv"], p["max_corr"])
    order = [c for c in selected if c in bank_features] + [c for c in selected if c not in bank_features]
    theta = flr.fit_nonneg_lr(W[order].to_numpy(), y, p["C"])
    sc = assemble_scorecard(binner.bins_, order, theta[:-1], theta[-1], directions, iv, dropped, p)
    return {"scorecard": sc, "theta": theta, "features": order, "binner": binner}


def federated_train(data_dir, *, key_bits: int = 2048, mode: str = "exact", batch_size: int = 1000,
                    max_epochs: int = 15, test_share: float = 0.3, experiment: str = "riskmodel-federated",
                    registered_name: str | None = "riskmodel-federated-scorecard", log_mlflow: bool = True,
                    seed: int = 42, plaintext: bool = False) -> dict:
    """``riskmodel federated-train``: federated vs centralized scorecard on the out-of-time split of
    a data-hub directory; logs the federated model to MLflow like any other training run."""
    from riskmodel import dataset
    from riskmodel.federated.alignment import row_keys
    from riskmodel.train import features_for_model, make_credit_model, usable_features

    t_start = time.perf_counter()
    data_dir = Path(data_dir)
    if key_bits not in (512, 1024, 2048, 3072, 4096) and not plaintext:
        raise UserError(f"--key-bits must be one of 512 (tests only), 1024, 2048, 3072, 4096; got {key_bits}")
    ls = dataset.load_labelled(data_dir, test_share=test_share)
    feats, catalog, info = ls.features, ls.catalog, ls.info
    train_df, test_df, cut = ls.train, ls.test, ls.cut
    for part, frame in (("training rows (before the cut)", train_df), ("test rows (after the cut)", test_df)):
        classes = sorted(int(v) for v in pd.unique(frame[TARGET].astype("int64")))
        if len(classes) < 2:
            raise UserError(f"{data_dir}: the {part} hold only {'class ' + str(classes[0]) if classes else 'no rows'} in {TARGET!r}; "
                            "federated training needs defaults and non-defaults on both sides of the cut to fit and to compare AUCs; nothing was registered")
    features = usable_features(train_df, features_for_model("scorecard", train_df, catalog), "training rows (before the cut)")
    bank_f, hub_f = split_roles(catalog, features)
    directions = {str(r.name): int(r.direction) for r in catalog.itertuples() if r.name in features}

    # The bank brings its labelled training applications; the hub brings its rows for every application.
    bank_X = train_df[bank_f].reset_index(drop=True)
    bank_keys = row_keys(train_df["firm_id"], train_df["application_date"])
    y_train = train_df[TARGET].to_numpy(dtype="int64")
    hub_X = feats[hub_f].reset_index(drop=True)
    hub_keys = row_keys(feats["firm_id"], feats["application_date"])
    fed = federated_fit(bank_X, bank_keys, y_train, hub_X, hub_keys, directions, key_bits=key_bits,
                        plaintext=plaintext, mode=mode, batch_size=batch_size, max_epochs=max_epochs, seed=seed)

    # The centralized comparison: same pipeline, same aligned training rows, pooled in the clear.
    g_rows = fed["aligned_rows"]["guest"]
    pooled = train_df.iloc[g_rows]
    cen = centralized_fit(pooled[bank_f + hub_f], pooled[TARGET].to_numpy(), bank_f, directions)
    y_test = test_df[TARGET].to_numpy(dtype="int64")
    credit_model = make_credit_model(fed["scorecard"], fed["features"], catalog, "federated_scorecard")
    pred_test = credit_model.predict(test_df[fed["features"]])
    fed_auc = ev.auc(y_test, pred_test["pd"].to_numpy())
    cen_auc = ev.auc(y_test, cen["scorecard"].predict_proba(test_df[cen["features"]])[:, 1])
    common = [f for f in cen["features"] if f in fed["features"]]
    coef_gap = float(np.max(np.abs(fed["scorecard"].coef_[common] - cen["scorecard"].coef_[common]))) if common else float("nan")
    summary_channel = fed["channel"].summary()
    summary = {
        "data": str(data_dir), "cut_date": str(cut.date()), "n_train": int(len(g_rows)), "n_test": int(len(test_df)),
        "mode": mode, "key_bits": fed["key_bits"], "batch_size": batch_size,
        "federated_auc": round(float(fed_auc), 6), "centralized_auc": round(float(cen_auc), 6),
        "auc_gap": round(float(fed_auc - cen_auc), 6), "max_coef_gap": round(coef_gap, 6),
        "features": {"bank": len(fed["own_features"]), "hub": len(fed["host_features"]),
                     "same_selection_as_centralized": set(fed["features"]) == set(cen["features"])},
        "epochs": fed["fit"]["epochs"], "batches_per_epoch": fed["fit"]["batches_per_epoch"],
        "rounds": summary_channel["messages"], "bytes_total": summary_channel["bytes"],
        "per_party": summary_channel["parties"], "alignment": fed["alignment"],
        "seconds_per_epoch": round(float(np.mean([h["seconds"] for h in fed["fit"]["history"]])), 3),
        "phases_seconds": {k: round(v, 3) for k, v in fed["phases"].items()},
        "wall_seconds": round(fed["seconds"], 3),
    }
    if log_mlflow:
        summary.update(_log_run(fed, cen, summary, credit_model, train_df, test_df, pred_test, catalog, experiment,
                                registered_name, info))
    summary["seconds_total"] = round(time.perf_counter() - t_start, 3)
    return summary


def _log_run(fed, cen, summary, credit_model, train_df, test_df, pred_test, catalog, experiment, registered_name, info) -> dict:
    from riskmodel import tracking

    y_test = test_df[TARGET].to_numpy(dtype="int64")
    tags = {"riskmodel.model": "federated_scorecard", "riskmodel.source": "federated", "riskmodel.registered_name": registered_name or ""}
    with tracking.training_run(experiment, run_name="federated_scorecard", tags=tags) as run:
        run.log_params({
            "model": "federated_scorecard", "mode": summary["mode"], "key_bits": summary["key_bits"],
            "batch_size": summary["batch_size"], "n_train": summary["n_train"], "n_test": summary["n_test"],
            "cut_date": summary["cut_date"], "data_fingerprint": info.data_fingerprint, "manifest_hash": info.manifest_hash,
            "feature_code_version": info.code_version, "catalog_version": info.catalog_version, "bank_features": fed["own_features"],
            "hub_features": fed["host_features"], "rounds": summary["rounds"], "epochs": summary["epochs"],
        })
        metrics = {
            "test_auc": summary["federated_auc"], "centralized_test_auc": summary["centralized_auc"],
            "auc_gap": summary["auc_gap"], "max_coef_gap": summary["max_coef_gap"],
            "test_ks": ev.ks(y_test, pred_test["pd"].to_numpy()), "rounds": summary["rounds"],
            "bytes_total": summary["bytes_total"], "wall_seconds": summary["wall_seconds"],
            "seconds_per_epoch": summary["seconds_per_epoch"], "epochs": summary["epochs"],
        }
        for party, d in summary["per_party"].items():
            metrics[f"bytes_sent_{party}"] = d["bytes_sent"]
            metrics[f"messages_sent_{party}"] = d["messages_sent"]
        run.log_metrics(metrics)
        run.log_table(fed["scorecard"].table(), "scorecard_table.csv")
        run.log_table(pd.DataFrame([e.__dict__ for e in fed["channel"].log]).drop(columns=["fields"]), "federated/message_log.csv")
        run.log_dict({"channel": fed["channel"].summary(), "timers": fed["timers"], "history": fed["fit"]["history"]},
                     "federated/summary.json")
        run.log_dict({"features": fed["features"], "directions": {f: int(fed["scorecard"].directions_.get(f, 0)) for f in fed["features"]}},
                     "features.json")
        name, version = run.log_model(credit_model, train_df[fed["features"]], registered_name)
    return {"run_id": run.run_id, "registered_name": name, "registered_version": version}
