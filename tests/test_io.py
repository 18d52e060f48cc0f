"""Sample files for `mi-estimators estimate`: only the selected CSV columns are read, and every
failure names the file, the column as the user wrote it and the line, and says what to do."""

import numpy as np
import pytest

from mi_estimators import cli
from mi_estimators.io import load_array, select_columns


@pytest.fixture
def table(tmp_path):
    path = tmp_path / "data.csv"
    rows = ["id,a,b,label"] + [f"r{i},{i},{2 * i + 1},cat{i % 3}" for i in range(60)]
    path.write_text("\n".join(rows) + "\n")
    return path


def test_unselected_text_columns_are_ignored(table):
    np.testing.assert_array_equal(load_array(str(table), "a,b")[:3], [[0, 1], [1, 3], [2, 5]])
    np.testing.assert_array_equal(load_array(str(table), "2")[:2, 0], [1, 3])


def test_a_selected_text_column_names_file_column_and_line(table):
    with pytest.raises(ValueError) as err:
        load_array(str(table), "a,label")
    msg = str(err.value)
    assert str(table) in msg and "'label'" in msg and "line 2" in msg and "'cat0'" in msg


@pytest.mark.parametrize("field", ["", "NA", "nan", "null"])
def test_missing_values_are_called_missing(tmp_path, field):
    path = tmp_path / "m.csv"
    path.write_text(f"x,y\n1,2\n3,{field}\n5,6\n")
    with pytest.raises(ValueError, match=r"missing value in column 'y' at line 3"):
        load_array(str(path), "y")


def test_a_short_row_is_a_missing_value(tmp_path):
    path = tmp_path / "short.csv"
    path.write_text("1,2\n3\n")
    with pytest.raises(ValueError, match=r"missing value in column '1' at line 2"):
        load_array(str(path))


@pytest.mark.parametrize("text, match", [("", "is empty"), ("\n\n", "is empty"),
                                         ("a,b\n", "header row .* no data rows")])
def test_empty_and_header_only_csv(tmp_path, text, match):
    path = tmp_path / "e.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_array(str(path))


def test_binary_files_that_are_empty_truncated_or_hold_objects(tmp_path):
    (tmp_path / "empty.npy").write_bytes(b"")
    with pytest.raises(ValueError, match="not a readable .npy"):
        load_array(str(tmp_path / "empty.npy"))
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ValueError, match="Python objects"):
        load_array(str(tmp_path / "obj.npy"))
    np.save(tmp_path / "none.npy", np.zeros((0, 3)))
    with pytest.raises(ValueError, match=r"shape \(0, 3\)"):
        load_array(str(tmp_path / "none.npy"))


def test_column_selection_errors_say_what_exists():
    with pytest.raises(ValueError, match=r"out of range: the file has 3 columns"):
        select_columns("0,5", None, 3)
    with pytest.raises(ValueError, match=r"header names are \['a', 'b'\]"):
        select_columns("c", ["a", "b"], 2)


def test_cli_reports_a_bad_file_in_one_line(table, capsys):
    assert cli.main(["estimate", str(table), "--x-cols", "a", "--y-cols", "label"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "label" in err and "Traceback" not in err
