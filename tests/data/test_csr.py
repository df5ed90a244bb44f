import torch

from graphrec.data.csr import csr_matmul, csr_tensor, row_positions


def small_csr():
    dense = torch.tensor([[0., 2., 0., 1.],
                          [0., 0., 0., 0.],
                          [3., 0., 4., 0.],
                          [0., 5., 0., 6.]])
    return dense, dense.to_sparse_csr()


def test_row_positions_rebuild_the_chosen_rows_in_order():
    dense, a = small_csr()
    rows = torch.tensor([3, 1, 0, 3])  # a repeat and an empty row
    rowptr, positions = row_positions(a.crow_indices(), rows)
    sub = csr_tensor(rowptr, a.col_indices()[positions], a.values()[positions], (4, 4))
    torch.testing.assert_close(sub.to_dense(), dense[rows])


def test_row_positions_of_no_rows():
    _, a = small_csr()
    rowptr, positions = row_positions(a.crow_indices(), torch.tensor([], dtype=torch.long))
    assert rowptr.tolist() == [0] and positions.numel() == 0


def test_csr_matmul_matches_dense():
    dense, a = small_csr()
    x = torch.randn(4, 3)
    torch.testing.assert_close(csr_matmul(a, x), dense @ x)
