"""One CSV row per run folder: name, validation and test error, epochs, seconds (pretraining, fine-tuning, wall)."""
import json
import pathlib
import sys
root = pathlib.Path(sys.argv[1])
print("name,valid,test,epochs,best_epoch,pretrain_s,finetune_s,wall_s,status")
for d in sorted(p for p in root.iterdir() if p.is_dir()):
    wall = (root / f"{d.name}.time").read_text().strip() if (root / f"{d.name}.time").exists() else ""
    try:
        r = json.loads((d / "results.json").read_text())
    except OSError:
        log = (root / f"{d.name}.log").read_text()[-300:].replace("\n", " ").replace(",", ";") if (root / f"{d.name}.log").exists() else ""
        print(f"{d.name},,,,,,,{wall},failed: {log}")
        continue
    ft = r["finetuning"]
    best = max((h["epoch"] for h in ft["history"] if h["test_error"] is not None), default="")
    print(f"{d.name},{ft['best_validation_error']:.4f},{ft['test_error']:.4f},{ft['epochs']},{best},"
          f"{r['pretraining']['seconds']:.1f},{ft['seconds']:.1f},{wall},ok")
