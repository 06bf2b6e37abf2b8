"""zxVAD (Aich et al., WACV 2023): the generator with its memory, the critics D and N, and the pseudo-anomalies."""
