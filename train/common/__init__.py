"""The trainers' shared kit: run folders, the step loop, checkpoint files, seeding, devices, loss curves and the
image losses of Eqs. (7)-(8). Imports no job."""
