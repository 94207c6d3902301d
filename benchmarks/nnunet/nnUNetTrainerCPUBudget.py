"""nnU-Net v2 trainer that stops when a CPU-time budget is spent (peer of medseg's model).

Copied into nnunetv2/training/nnUNetTrainer/variants/ by benchmarks/install_nnunet.sh (nnU-Net
finds trainers by class name inside its own package). Everything is nnU-Net's default
(plans, network, augmentation, loss, poly learning rate) except the schedule: epochs of
``MEDSEG_NNUNET_ITERATIONS`` iterations (default 2) and 1 validation iteration; after the
first epoch the number of epochs is set so that the training fits
``MEDSEG_NNUNET_CPU_SECONDS`` of process CPU time (default 150), and the poly learning-rate
schedule is stretched to that number. Run with nnUNet_n_proc_DA=0 so that data augmentation
runs in the training process and counts against the budget. ``MEDSEG_NNUNET_BATCH``
overrides the planned batch size (memory).
"""

import os
import time

import torch
from nnunetv2.training.nnUNetTrainer.nnUNetTrainer import nnUNetTrainer

_CUDA = torch.device("cuda")


class nnUNetTrainerCPUBudget(nnUNetTrainer):
    def __init__(self, plans, configuration, fold, dataset_json, device=_CUDA):
        super().__init__(plans, configuration, fold, dataset_json, device)
        self.cpu_budget_s = float(os.environ.get("MEDSEG_NNUNET_CPU_SECONDS", "150"))
        self.num_iterations_per_epoch = int(os.environ.get("MEDSEG_NNUNET_ITERATIONS", "2"))
        self.num_val_iterations_per_epoch = 1
        self.num_epochs = 1000
        torch.set_num_threads(int(os.environ.get("MEDSEG_NNUNET_THREADS", "1")))

    def _set_batch_size_and_oversample(self):
        super()._set_batch_size_and_oversample()
        if os.environ.get("MEDSEG_NNUNET_BATCH"):  # the planned batch of 2 needs > 6 GB on CPU
            self.batch_size = int(os.environ["MEDSEG_NNUNET_BATCH"])

    def run_training(self):
        self.on_train_start()
        started = time.process_time()
        epoch = self.current_epoch
        while epoch < self.num_epochs:
            self.on_epoch_start()
            self.on_train_epoch_start()
            outputs = [
                self.train_step(next(self.dataloader_train))
                for _ in range(self.num_iterations_per_epoch)
            ]
            self.on_train_epoch_end(outputs)
            with torch.no_grad():
                self.on_validation_epoch_start()
                val = [
                    self.validation_step(next(self.dataloader_val))
                    for _ in range(self.num_val_iterations_per_epoch)
                ]
                self.on_validation_epoch_end(val)
            spent = time.process_time() - started
            if epoch == 0:
                per_epoch = max(spent, 1e-3)
                self.num_epochs = max(1, int(self.cpu_budget_s / per_epoch))
                self.lr_scheduler.max_steps = self.num_epochs
                self.print_to_log_file(
                    f"CPU budget {self.cpu_budget_s:.0f} s: {per_epoch:.1f} s per epoch, "
                    f"{self.num_epochs} epochs of {self.num_iterations_per_epoch} iterations"
                )
            self.on_epoch_end()
            epoch += 1
            if spent >= self.cpu_budget_s:
                break
        self.num_epochs = epoch
        self.print_to_log_file(
            f"trained {epoch} epochs in {time.process_time() - started:.0f} CPU s"
        )
        self.on_train_end()
