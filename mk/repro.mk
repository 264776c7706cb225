# Reproduction targets: one per paper. Included by the Makefile (`include mk/repro.mk`),
# which defines NTKEXP (the ntkexp command), SIZE (small | full) and STAMP (the install).
#
#   make repro-jacot2018                      # small: CPU minutes; results/jacot2018/
#   make repro-jacot2018 SIZE=full LAUNCHER=slurm        # the paper's sizes, on SLURM
#   make repro-lee2020 SIZE=full LAUNCHER=local_mycluster  # your git-ignored preset
#   make repro-nads EXTRA='seed=0,1,2'        # extra overrides / sweeps for every run
#
# Each target runs its paper-figure configs (conf/experiment/<config>.yaml), one
# `ntkexp run -m` per config, into runs/repro/<SIZE>/<paper>/, then `ntkexp collect`
# and `ntkexp plot` into results/<paper>/ (SIZE=small; committed) or
# results/<paper>/full/ (SIZE=full). Runs that already finished ok are skipped, failed
# ones are retried: re-running a target after a crash or a cancelled job only redoes
# what is missing. A failing config does not stop the others; the target then
# collects and plots what finished and exits non-zero. The commands are written to
# results/<paper>[/full]/COMMANDS.txt.
#
# Per config: SMALL_<config> (the sweep that makes the figure at CPU size; often empty:
# the config's own sizes) and FULL_<config> (the paper's sizes). Override any of them
# from the command line, e.g. make repro-jacot2018 FULL_jacot2018_fig3='model.width=100,1000'.
# Datasets that are not built in (MNIST, CIFAR-10) are read from DATA (default $NTKEXP_DATA),
# e.g. make repro-jacot2018 DATA=../shared/data.

LAUNCHER ?=
EXTRA ?=
DATA ?=
REPRO_RUNS ?= runs/repro
REPRO_RESULTS ?= results

# --- Jacot et al. 2018 ---------------------------------------------------------------
# Fig. 1: FC ReLU depth 4, widths 500 / 10000, 10 inits, 200 GD steps on N(0, I_2) inputs
# (the NTK is then drawn on the unit circle).
# The config is the paper's setting; small: 3 of the 10 initialisations.
SMALL_jacot2018_fig1 ?= 'experiment.seeds=[0,1,2]'
FULL_jacot2018_fig1 ?=
# Fig. 2: widths 50 / 1000, 4 training points, 1000 steps, 10 inits.
# The config is the paper's setting and CPU-sized.
SMALL_jacot2018_fig2 ?=
FULL_jacot2018_fig2 ?=
# Fig. 3: kernel PCA of 512 MNIST digits; widths 100 / 1000 / 10000.
SMALL_jacot2018_fig3 ?= model.width=100,1000
FULL_jacot2018_fig3 ?= model.width=100,1000,10000
# --- Lee et al. 2020 -----------------------------------------------------------------
# Kernels (Table 1 / Fig. 5): NNGP vs NTK of FC and CNN-VEC on 1000 CIFAR-10 images (500 test),
# with and without ZCA, five diag_reg. CNN-GAP at 32x32 is GPU-sized (~3 kernel entries/s on a
# CPU), so the small size compares FC < CNN-VEC < CNN-GAP on 8x8 digits (lee2020_digits).
# `make repro-lee2020-kernels` runs only these two configs (results/lee2020-kernels/).
SMALL_lee2020_cifar10 ?= model=fc,cnn_vec dataset.zca=null,0.1
FULL_lee2020_cifar10 ?= model=fc,cnn_vec,cnn_gap dataset.zca=null,0.1 dataset.n_train=50000 dataset.n_test=10000
SMALL_lee2020_digits ?= model=fc,cnn_vec,cnn_gap dataset.zca=null,0.1
FULL_lee2020_digits ?= model=fc,cnn_vec,cnn_gap dataset.zca=null,0.1 dataset.n_train=null dataset.n_test=null
# ZCA study: FC and CNN-VEC against the ZCA regulariser, statistics from the 1000 training
# images or the whole training split (`make repro-lee2020-zca`, results/lee2020-zca/).
SMALL_lee2020_zca ?= model=fc,cnn_vec dataset.zca=null,0.01,0.1,1,10,100 dataset.stats_from=subset,train_split
FULL_lee2020_zca ?= model=fc,cnn_vec,cnn_gap dataset.zca=null,0.01,0.1,1,10,100 dataset.stats_from=train_split dataset.n_train=50000 dataset.n_test=10000
# Finite nets (NTK and standard parameterisation) vs kernels; full: 45k CIFAR-10 images.
# Small: FC 3x512 and CNN-VEC 4x16 channels, 256 images, 300 steps; lr from the initial net's
# empirical NTK (the 16-channel CNN's is ~2.3x the analytic one). ~15 min on 2 busy CPU cores.
SMALL_lee2020_finite ?= model=fc,cnn_vec model.parameterization=ntk,standard experiment.lr_kernel=empirical
FULL_lee2020_finite ?= model=fc,cnn_vec model.parameterization=ntk,standard 'experiment.model_widths={fc:[2048],cnn:[512]}' dataset.n_train=45000 dataset.n_test=10000
# Ensembles of finite nets (Sec. 3.3, Fig. 1 "+Ens"): FC 3-layer at widths 128 / 1024, 16 seeds in
# one run, 256 CIFAR-10 images (`make repro-lee2020-ensemble`, results/lee2020-ensemble/).
# Full: the paper's width and 45k images, 64 seeds (GPU-sized; no union: its 100k x 100k kernel is 80 GB).
SMALL_lee2020_ensemble ?=
FULL_lee2020_ensemble ?= 'experiment.model_widths={fc:[2048],cnn:[512]}' 'experiment.seeds=[$(shell seq -s, 0 63)]' dataset.n_train=45000 dataset.n_test=10000
# Data augmentation by ensembling kernel predictors: FC and CNN-VEC on 1000 CIFAR-10 images
# (1000 test), 16 members with random flips (and one predictor on [x; flip(x)]), 8 with flips and
# shifts of up to 4 pixels (`make repro-lee2020-augment`, results/lee2020-augment/). Full: the
# whole training set, CNN-GAP too (GPU-sized; no union: its 100k x 100k kernel is 80 GB).
SMALL_lee2020_augment ?= model=fc,cnn_vec
FULL_lee2020_augment ?= model=fc,cnn_vec,cnn_gap dataset.n_train=50000 dataset.n_test=10000 experiment.augment.union=false
SMALL_lee2020_augment_crop ?= model=fc,cnn_vec
FULL_lee2020_augment_crop ?= model=fc,cnn_vec,cnn_gap dataset.n_train=50000 dataset.n_test=10000
# Equivariance (abstract, Sec. 3): finite CNN-VEC vs its locally connected twin (LCN, the same
# NNGP / NTK) at widths 4 ... 32, plain and centred, on 256 8x8 digits, 2 seeds (`make
# repro-lee2020-equivariance`, results/lee2020-equivariance/). Full: CIFAR-10 at the paper's widths
# (GPU-sized: an LCN layer on 32x32 images costs ~2 s per CPU GD step at width 16).
SMALL_lee2020_equivariance ?= model=cnn_vec,lcn
FULL_lee2020_equivariance ?= model=cnn_vec,lcn dataset=cifar10 dataset.standardize=per_channel 'experiment.model_widths={cnn:[16,32,64,128,256,512]}' dataset.n_train=45000 dataset.n_test=10000
# Floating-point precision (abstract: "floating point precision limits kernel performance beyond
# a critical dataset size"): FC and CNN-GAP NNGP / NTK on all 1437 8x8 digits (360 test), float64,
# float32 and the float64 kernels rounded to 6 ... 20 mantissa bits, against the training-set size
# and the noise model's critical size (`make repro-lee2020-precision`, results/lee2020-precision/).
# Full: their CIFAR-10 CNN-GAP float32 breakdown near 10^4 images, float64 and float32 only
# (GPU-sized: a 20000-image CNN-GAP kernel).
SMALL_lee2020_precision ?= model=fc,cnn_gap
FULL_lee2020_precision ?= model=fc,cnn_gap dataset=cifar10 dataset.n_train=20000 dataset.n_test=2000 'experiment.mantissa_bits=[]' 'experiment.train_sizes=[625,1250,2500,5000,10000,20000]'
# L2 regularisation of finite nets (Sec. 3, Fig. 1 "+L2"): FC 3x512, NTK and standard
# parameterisation, one l2 grid for both (their learning rates differ ~300x), weight decay and
# L2 towards the initialisation, 3 seeds (`make repro-lee2020-l2`, results/lee2020-l2/).
SMALL_lee2020_l2 ?= model.parameterization=ntk,standard experiment.l2=0,1e-4,1e-3,1e-2,0.1,1 experiment.l2_center=zero,init
FULL_lee2020_l2 ?= model.parameterization=ntk,standard experiment.l2=0,1e-5,1e-4,1e-3,1e-2,0.1,1 'experiment.model_widths={fc:[2048]}' dataset.n_train=45000 dataset.n_test=10000
# Large learning rates (Sec. 3, Fig. 1 "+LR"; the catapult of Lewkowycz et al. 2020): FC 3x512 at
# 0.25 ... 8 times its stability bound 2 / lambda_max, 3 seeds (`make repro-lee2020-lr`,
# results/lee2020-lr/). Full: the bound from the analytic NTK (an empirical NTK on 45k images is not affordable).
SMALL_lee2020_lr ?= experiment.lr_fraction=0.25,0.5,1.0,1.5,2.0,3.0,4.0,6.0,8.0
FULL_lee2020_lr ?= experiment.lr_fraction=0.25,0.5,1.0,1.5,2.0,3.0,4.0,6.0,8.0,12.0 experiment.lr_kernel=analytic 'experiment.model_widths={fc:[2048]}' dataset.n_train=45000 dataset.n_test=10000
# Width (abstract: "performance depends non-monotonically on width"): FC at widths 32 ... 2048,
# plain and centred, 3 seeds (`make repro-lee2020-width`, results/lee2020-width/).
SMALL_lee2020_width ?=
FULL_lee2020_width ?= 'experiment.model_widths={fc:[64,128,256,512,1024,2048,4096,8192]}' dataset.n_train=45000 dataset.n_test=10000
# Diagonal regularisation vs early stopping (abstract, Sec. 3): FC and CNN-VEC kernels on 1000
# CIFAR-10 images, eps 1e-6 ... 10 at t = inf and t 1e2 ... 1e9 (`make
# repro-lee2020-early-stopping`, results/lee2020-early-stopping/).
SMALL_lee2020_early_stopping ?= model=fc,cnn_vec
FULL_lee2020_early_stopping ?= model=fc,cnn_vec,cnn_gap dataset.n_train=50000 dataset.n_test=10000
# --- Arora et al. 2020: CIFAR-10 subsets of 10 ... 1280 points, 20 draws each ---------
# Small: FC and CNN-VEC, one draw per size, 250 test images; full: CNN-GAP too, 20 draws, the
# whole test set.
SMALL_arora2020_small_data ?= model=fc,cnn_vec dataset.n_train=10,20,40,80,160,320,640,1280 dataset.n_test=250
FULL_arora2020_small_data ?= model=fc,cnn_vec,cnn_gap dataset.n_train=10,20,40,80,160,320,640,1280 dataset.n_test=null 'seed=range(20)'
# --- Kopitkov & Indelman 2019: the three learning-rate schedules ----------------------
SMALL_kopitkov2019 ?= experiment.schedule=constant,step,cosine
FULL_kopitkov2019 ?= experiment.schedule=constant,step,cosine dataset.n_train=512 experiment.steps=10000
# --- ResNets: NTK drift FC vs ResNet against width (NTH); ResNTK spectra --------------
# Small: widths 64 ... 1024 (the config's own list goes to 2048), 3 seeds.
SMALL_ntk_drift ?= model=fc,resnet 'experiment.widths=[64,128,256,512,1024]'
FULL_ntk_drift ?= model=fc,resnet 'experiment.widths=[64,128,256,512,1024,2048,4096,8192]' 'experiment.seeds=[0,1,2,3,4]'
SMALL_resntk_spectrum ?= model=fc,resnet
# The ResNet's drift against its residual-branch scale alpha (`make repro-resnet-ntk-alpha`,
# results/resnet-ntk-alpha/): alpha 0 (the two-layer linear net) ... 2, widths 64 ... 1024, each
# net with its centred twin; the FC net beside them.
SMALL_ntk_drift_alpha ?= model.alpha=0,0.1,0.25,0.5,1,2 model.normalize=false,true
FULL_ntk_drift_alpha ?= model.alpha=0,0.1,0.25,0.5,1,2 model.normalize=false,true 'experiment.widths=[64,128,256,512,1024,2048,4096,8192]' 'experiment.seeds=[0,1,2,3,4]'
SMALL_ntk_drift_fc_centered ?=
FULL_ntk_drift_fc_centered ?= 'experiment.widths=[64,128,256,512,1024,2048,4096,8192]' 'experiment.seeds=[0,1,2,3,4]'
# Why the normalised ResNet's kernel moves less than its centred twin's: the centred net
# f - c f_0 (the net trained on y + c f_0) at five centrings c, ResNet at alpha 0.5 and 2, FC.
SMALL_ntk_drift_centering ?= model.alpha=0.5,2 experiment.center_scale=-1,0,0.5,1,2
FULL_ntk_drift_centering ?= model.alpha=0.5,2 experiment.center_scale=-1,0,0.5,1,2 'experiment.widths=[64,128,256,512,1024,2048,4096,8192]' 'experiment.seeds=[0,1,2,3,4]'
SMALL_ntk_drift_fc_centering ?= experiment.center_scale=-1,0,0.5,1,2
FULL_ntk_drift_fc_centering ?= experiment.center_scale=-1,0,0.5,1,2 'experiment.widths=[64,128,256,512,1024,2048,4096,8192]' 'experiment.seeds=[0,1,2,3,4]'
FULL_resntk_spectrum ?= model=fc,resnet experiment.lmax=128 experiment.gram_points=4000
# --- Huang et al. 2020: FC NTK degenerates with depth, the ResNTK does not -------------
# Kernel regression on two-class MNIST (4 vs 9) and CIFAR-10 (airplane vs automobile), 1000
# training images, depths 1 ... 128; ResNets with alpha = L^-1/2 and L^-1 (`make repro-huang2020`,
# results/huang2020/). Full: every training image of the two classes, depths to 1024.
HUANG_DEPTHS_SMALL := model.depth=1,2,4,8,16,32,64,128
HUANG_DEPTHS_FULL := model.depth=1,2,4,8,16,32,64,128,256,512,1024 dataset.n_train=null
SMALL_huang2020_depth ?= $(HUANG_DEPTHS_SMALL) dataset=mnist,cifar10
FULL_huang2020_depth ?= $(HUANG_DEPTHS_FULL) dataset=mnist,cifar10
SMALL_huang2020_depth_resnet ?= model.alpha_gamma=0.5,1 $(HUANG_DEPTHS_SMALL) dataset=mnist,cifar10
FULL_huang2020_depth_resnet ?= model.alpha_gamma=0.5,0.75,1 $(HUANG_DEPTHS_FULL) dataset=mnist,cifar10
# Finite nets of growing depth at one width (`make repro-huang2020-finite`,
# results/huang2020-finite/): FC and the ResNet with alpha = L^-1/2, width 256, 256 MNIST 4 vs 9
# images, 1000 GD steps, 2 seeds. Full: width 1024, 4096 images, depths to 128.
SMALL_huang2020_finite ?= model.depth=1,2,4,8,16,32,64
FULL_huang2020_finite ?= model.depth=1,2,4,8,16,32,64,128 'experiment.widths=[1024]' dataset.n_train=4096
SMALL_huang2020_finite_resnet ?= $(SMALL_huang2020_finite)
FULL_huang2020_finite_resnet ?= $(FULL_huang2020_finite)
# The Neural Tangent Hierarchy against the NTK's change (`make repro-nth`, results/nth/): FC and
# ResNet at widths 64 ... 512, 3 seeds, erf (smooth, as the hierarchy assumes) and ReLU.
# Full: widths to 4096.
SMALL_nth ?= model=fc,resnet model.activation=erf,relu
FULL_nth ?= model=fc,resnet model.activation=erf,relu 'experiment.widths=[64,128,256,512,1024,2048,4096]'
# --- Ortiz-Jimenez et al. 2020: NADs and accuracy maps ---------------------------------
# Small: 8x8 images, FC (isotropic) vs CNN (pooling); 512 networks for the NADs, with the
# authors' estimator (central differences of step 100 at one fixed x0; exact gradients there
# make x0 itself a NAD, results/nads/README.md); every other frequency (10 directions) for
# the accuracy maps, with the paper's 10000 / 10000 samples. Full: the configs' own settings
# (32x32, GPU-sized).
SMALL_ortiz2020_nads ?= model=fc,cnn 'experiment.image_size=[8,8]' experiment.nad.n_networks=512
FULL_ortiz2020_nads ?= model=fc,cnn,myrtle,wrn,resnet
SMALL_ortiz2020_accuracy_maps ?= model=fc,cnn 'experiment.image_size=[8,8]' experiment.freq_stride=2
FULL_ortiz2020_accuracy_maps ?= model=fc,cnn,myrtle,wrn,resnet

# --- which configs make each paper ---------------------------------------------------
REPRO_jacot2018 := jacot2018_fig1 jacot2018_fig2 jacot2018_fig3
REPRO_lee2020 := lee2020_cifar10 lee2020_digits lee2020_early_stopping lee2020_finite lee2020_ensemble lee2020_l2 lee2020_lr lee2020_width
REPRO_lee2020-kernels := lee2020_cifar10 lee2020_digits
REPRO_lee2020-zca := lee2020_zca
REPRO_lee2020-augment := lee2020_augment lee2020_augment_crop
REPRO_lee2020-equivariance := lee2020_equivariance
REPRO_lee2020-precision := lee2020_precision
REPRO_lee2020-ensemble := lee2020_ensemble
REPRO_lee2020-l2 := lee2020_l2
REPRO_lee2020-lr := lee2020_lr
REPRO_lee2020-width := lee2020_width
REPRO_lee2020-early-stopping := lee2020_early_stopping
REPRO_arora2020 := arora2020_small_data
REPRO_kopitkov2019 := kopitkov2019
REPRO_resnet-ntk := ntk_drift resntk_spectrum
REPRO_resnet-ntk-alpha := ntk_drift_alpha ntk_drift_fc_centered ntk_drift_centering ntk_drift_fc_centering
REPRO_huang2020 := huang2020_depth huang2020_depth_resnet
REPRO_huang2020-finite := huang2020_finite huang2020_finite_resnet
REPRO_nads := ortiz2020_nads ortiz2020_accuracy_maps
REPRO_nth := nth

repro_out = $(REPRO_RESULTS)/$(1)$(if $(filter full,$(SIZE)),/full,)
repro_runs = $(REPRO_RUNS)/$(SIZE)/$(1)
# $(call repro_cmd,paper,config): the sweep of one config.
repro_cmd = $(NTKEXP) run -m experiment=$(2) paths.runs=$(call repro_runs,$(1)) \
  $(if $(DATA),paths.data=$(abspath $(DATA)),) \
  $(if $(filter full,$(SIZE)),$(FULL_$(2)),$(SMALL_$(2))) \
  $(if $(LAUNCHER),hydra/launcher=$(LAUNCHER),) $(EXTRA)
repro_collect = $(NTKEXP) collect $(call repro_runs,$(1)) -o $(call repro_out,$(1))/table
repro_plot = $(NTKEXP) plot $(call repro_out,$(1))/table.parquet -o $(call repro_out,$(1))/figures

# $(call repro_recipe,paper): run every config, then collect and plot whatever finished.
define repro_recipe
@case "$(SIZE)" in small|full) ;; *) echo "make: SIZE must be small or full, not '$(SIZE)'" >&2; exit 2;; esac
@mkdir -p $(call repro_out,$(1)) && { \
  echo "# make repro-$(1) SIZE=$(SIZE)$(if $(LAUNCHER), LAUNCHER=$(LAUNCHER))$(if $(EXTRA), EXTRA=$(EXTRA)) ran:"; \
  $(foreach c,$(REPRO_$(1)),echo "$(strip $(call repro_cmd,$(1),$(c)))"; ) \
  echo "$(call repro_collect,$(1))"; echo "$(call repro_plot,$(1))"; \
  } > $(call repro_out,$(1))/COMMANDS.txt
@failed=0; \
$(foreach c,$(REPRO_$(1)),echo "+ $(strip $(call repro_cmd,$(1),$(c)))"; \
  $(call repro_cmd,$(1),$(c)) || failed=1; ) \
echo "+ $(call repro_collect,$(1))"; $(call repro_collect,$(1)) || exit 1; \
echo "+ $(call repro_plot,$(1))"; $(call repro_plot,$(1)) || failed=1; \
echo "results: $(call repro_out,$(1))/ (table.parquet, table.csv, figures/, COMMANDS.txt)"; \
if [ $$failed -ne 0 ]; then echo "make: some runs failed; see the sweep summaries above; re-run the target to retry only those" >&2; fi; \
exit $$failed
endef

.PHONY: repro-jacot2018 repro-lee2020 repro-lee2020-kernels repro-lee2020-zca repro-lee2020-augment repro-lee2020-equivariance repro-lee2020-precision repro-lee2020-ensemble repro-lee2020-l2 repro-lee2020-lr repro-lee2020-width repro-lee2020-early-stopping repro-arora2020 repro-kopitkov2019 \
        repro-resnet-ntk repro-resnet-ntk-alpha repro-huang2020 repro-huang2020-finite repro-nth repro-nads repro-all

repro-jacot2018: $(STAMP) ## Jacot et al. 2018 Figs. 1-3 (NTK slice, trained functions, kernel PCA) -> results/jacot2018/
	$(call repro_recipe,jacot2018)

repro-lee2020: $(STAMP) ## Lee et al. 2020: NNGP/NTK kernel regression + diag_reg vs early stopping + finite nets (width, ensembles, L2, large learning rates) -> results/lee2020/
	$(call repro_recipe,lee2020)

repro-lee2020-kernels: $(STAMP) ## Lee et al. 2020 kernel side only (NNGP/NTK, FC/CNN-VEC/CNN-GAP, ZCA, diag_reg) -> results/lee2020-kernels/
	$(call repro_recipe,lee2020-kernels)

repro-lee2020-zca: $(STAMP) ## Lee et al. 2020 ZCA study: accuracy against the ZCA regulariser, statistics from the subset or the train split -> results/lee2020-zca/
	$(call repro_recipe,lee2020-zca)

repro-lee2020-augment: $(STAMP) ## Lee et al. 2020 data augmentation by ensembling kernel predictors (flips; flips and shifts) -> results/lee2020-augment/
	$(call repro_recipe,lee2020-augment)

repro-lee2020-equivariance: $(STAMP) ## Lee et al. 2020 equivariance: finite CNN-VEC vs locally connected nets (same kernels) against the width -> results/lee2020-equivariance/
	$(call repro_recipe,lee2020-equivariance)

repro-lee2020-precision: $(STAMP) ## Lee et al. 2020 floating-point precision: float64, float32 and rounded kernels against the training-set size and the noise model's critical size -> results/lee2020-precision/
	$(call repro_recipe,lee2020-precision)

repro-lee2020-ensemble: $(STAMP) ## Lee et al. 2020 ensembles of finite nets: accuracy and distance to the kernel dynamics against the ensemble size -> results/lee2020-ensemble/
	$(call repro_recipe,lee2020-ensemble)

repro-lee2020-l2: $(STAMP) ## Lee et al. 2020 L2 regularisation of finite nets (NTK and standard param.) against the kernels -> results/lee2020-l2/
	$(call repro_recipe,lee2020-l2)

repro-lee2020-lr: $(STAMP) ## Lee et al. 2020 large learning rates (the catapult) of finite nets against their NTK dynamics -> results/lee2020-lr/
	$(call repro_recipe,lee2020-lr)

repro-lee2020-width: $(STAMP) ## Lee et al. 2020 finite nets against the width (plain and centred) beside the kernels -> results/lee2020-width/
	$(call repro_recipe,lee2020-width)

repro-lee2020-early-stopping: $(STAMP) ## Lee et al. 2020 diagonal regularisation vs early stopping of the kernels -> results/lee2020-early-stopping/
	$(call repro_recipe,lee2020-early-stopping)

repro-arora2020: $(STAMP) ## Arora et al. 2020: infinite-width kernels on small data -> results/arora2020/
	$(call repro_recipe,arora2020)

repro-kopitkov2019: $(STAMP) ## Kopitkov & Indelman 2019: NTK spectrum alignment -> results/kopitkov2019/
	$(call repro_recipe,kopitkov2019)

repro-resnet-ntk: $(STAMP) ## NTK drift FC vs ResNet (NTH) + ResNTK spectrum -> results/resnet-ntk/
	$(call repro_recipe,resnet-ntk)

repro-resnet-ntk-alpha: $(STAMP) ## The ResNet's NTK drift against its residual-branch scale alpha (0 ... 2) and width -> results/resnet-ntk-alpha/
	$(call repro_recipe,resnet-ntk-alpha)

repro-huang2020: $(STAMP) ## Huang et al. 2020: the FC NTK degenerates with depth, the ResNTK does not (kernel regression, kernel geometry) -> results/huang2020/
	$(call repro_recipe,huang2020)

repro-huang2020-finite: $(STAMP) ## Huang et al. 2020 with finite nets: FC and ResNet (alpha = L^-1/2) of growing depth at one width, against their NTK dynamics -> results/huang2020-finite/
	$(call repro_recipe,huang2020-finite)

repro-nth: $(STAMP) ## Huang & Yau 2020 Neural Tangent Hierarchy: the NTK's change against its K^(3) term and Taylor expansions, FC and ResNet, erf and ReLU -> results/nth/
	$(call repro_recipe,nth)

repro-nads: $(STAMP) ## Ortiz-Jimenez et al. 2020: NADs and accuracy maps -> results/nads/
	$(call repro_recipe,nads)

repro-all: repro-jacot2018 repro-lee2020 repro-lee2020-zca repro-lee2020-augment repro-lee2020-equivariance repro-lee2020-precision repro-arora2020 repro-kopitkov2019 repro-resnet-ntk repro-resnet-ntk-alpha repro-huang2020 repro-huang2020-finite repro-nth repro-nads ## Every repro target (SIZE as given)
