"""The training side: SFO-Net (sfonet/) and frame predictors (predictors/) as pure modules, the shared kit
(common/), one folder per command (sfonet_training/, predictor_training/, finetuning/, evaluation/) and the
experiment that chains them (experiment/)."""
