"""Every builder on a miniature copy of its official layout; layout and count errors."""

from __future__ import annotations

import io
import tarfile
import zipfile

import pytest

from dmlstudy.data import DATASETS, DatasetLayoutError, load_index, validate_index

NAMES = ["omniglot", "cub200", "cars196", "sop", "inshop"]


def test_registry_has_the_five_datasets_with_sources():
    assert sorted(DATASETS) == sorted(NAMES)
    for spec in DATASETS.values():
        assert spec.channels in (1, 3) and spec.files
        for f in spec.files:
            assert f.url.startswith(("http://", "https://")) and f.filename in f.url
            assert f.md5 is None or len(f.md5) == 32
    assert all(f.md5 is None for f in DATASETS["inshop"].files)  # no published checksum
    assert all(f.md5 for n in NAMES[:4] for f in DATASETS[n].files)


def test_unknown_dataset_lists_choices(tmp_path):
    with pytest.raises(KeyError, match="valid names"):
        load_index("mnist", tmp_path)


@pytest.mark.parametrize("name", NAMES)
def test_builder_on_official_layout(name, tiny_dataset, tmp_path):
    index = load_index(name, tiny_dataset(name), work_dir=tmp_path / "work")
    validate_index(index)
    assert list(index.columns[:7]) == [
        "path",
        "label",
        "coarse_label",
        "split",
        "is_query",
        "is_gallery",
        "class_name",
    ]
    assert set(index["split"]) == {"train", "test"}
    assert not set(index.loc[index.split == "train", "label"]) & set(
        index.loc[index.split == "test", "label"]
    )


@pytest.mark.parametrize("name", NAMES)
def test_official_counts_reject_a_partial_dataset(name, makers, tmp_path):
    data_dir = makers[name](tmp_path / "data")  # official expected counts stay in force
    with pytest.raises(DatasetLayoutError, match=f"{name}.*wrong layout or incomplete"):
        load_index(name, data_dir, work_dir=tmp_path / "work")


def test_omniglot_labels(tiny_dataset, tmp_path):
    index = load_index("omniglot", tiny_dataset("omniglot"), work_dir=tmp_path / "w")
    train = index[index.split == "train"]
    assert train.groupby("class_name")["label"].first().to_dict() == {
        "Greek/character01": 0,
        "Latin/character01": 1,
        "Latin/character02": 2,
    }
    assert train.groupby("coarse_name")["coarse_label"].first().to_dict() == {
        "Greek": 0,
        "Latin": 1,
    }
    test = index[index.split == "test"]
    assert set(test["label"]) == {3, 4} and set(test["coarse_label"]) == {2}
    assert index["path"].str.endswith(".png").all()  # directory entries skipped


def test_cub_split_and_names(tiny_dataset, tmp_path):
    index = load_index("cub200", tiny_dataset("cub200"), work_dir=tmp_path / "w")
    assert sorted(index.loc[index.split == "train", "label"].unique()) == [1, 100]
    assert sorted(index.loc[index.split == "test", "label"].unique()) == [101, 200]
    assert (index["coarse_label"] == -1).all()
    assert index.loc[index.label == 101, "class_name"].iloc[0] == "Bird 101"
    assert (tmp_path / "w" / "extracted" / "cub200" / index["path"].iloc[0]).is_file()
    assert not (tiny_dataset("cub200") / "cub200" / "CUB_200_2011").exists()  # data dir untouched


def test_cars_split_make_and_mat_parsing(tiny_dataset, tmp_path):
    index = load_index("cars196", tiny_dataset("cars196"), work_dir=tmp_path / "w")
    assert sorted(index.loc[index.split == "train", "label"].unique()) == [1, 98]
    assert sorted(index.loc[index.split == "test", "label"].unique()) == [99, 196]
    first = index.drop_duplicates("label").set_index("label")
    assert first.loc[99, "class_name"] == "Aston Martin Model99 2012"
    assert first["coarse_name"].to_dict() == {1: "BMW", 98: "Audi", 99: "Aston", 196: "BMW"}
    assert first["coarse_label"].to_dict() == {1: 2, 98: 1, 99: 0, 196: 2}  # sorted makes


def test_sop_columns(tiny_dataset, tmp_path):
    index = load_index("sop", tiny_dataset("sop"), work_dir=tmp_path / "w")
    first = index.drop_duplicates("label").set_index("label")
    assert first["coarse_label"].to_dict() == {1: 1, 2: 1, 3: 2, 11319: 1, 11320: 5}
    assert first.loc[11320, "class_name"] == "coffee_maker/11320"
    assert index["path"].str.startswith("Stanford_Online_Products/").all()


def test_inshop_query_gallery(tiny_dataset, tmp_path):
    index = load_index("inshop", tiny_dataset("inshop"), work_dir=tmp_path / "w")
    test = index[index.split == "test"]
    assert test["is_query"].sum() == 3 and test["is_gallery"].sum() == 3
    assert not (test["is_query"] & test["is_gallery"]).any()
    train = index[index.split == "train"]
    assert (train["is_query"] & train["is_gallery"]).all()
    assert sorted(index["label"].unique()) == [2, 7, 12, 80]
    first = index.drop_duplicates("label").set_index("label")
    assert first["coarse_name"].to_dict() == {
        2: "WOMEN/Dresses",
        80: "MEN/Denim",
        7: "WOMEN/Dresses",
        12: "MEN/Tees_Tanks",
    }
    assert first["coarse_label"].to_dict() == {2: 2, 80: 0, 7: 2, 12: 1}


def _drop_member(archive, member):
    """Rewrite a zip/tgz without ``member`` (simulates a broken archive)."""
    if archive.suffix == ".zip":
        with zipfile.ZipFile(archive) as z:
            items = {n: z.read(n) for n in z.namelist() if n != member}
        with zipfile.ZipFile(archive, "w") as z:
            for n, data in items.items():
                z.writestr(n, data)
    else:
        with tarfile.open(archive) as t:
            items = {m.name: t.extractfile(m).read() for m in t.getmembers() if m.name != member}
        with tarfile.open(archive, "w:gz") as t:
            for n, data in items.items():
                info = tarfile.TarInfo(n)
                info.size = len(data)
                t.addfile(info, io.BytesIO(data))


@pytest.mark.parametrize(
    "name,archive,member",
    [
        ("cub200", "CUB_200_2011.tgz", "CUB_200_2011/images/100.Bird_100/Bird_100_0001.jpg"),
        ("cars196", "car_ims.tgz", "car_ims/000004.jpg"),
        (
            "sop",
            "Stanford_Online_Products.zip",
            "Stanford_Online_Products/chair_final/100003_1.JPG",
        ),
        ("inshop", "img.zip", "img/MEN/Denim/id_00000080/02_1_front.jpg"),
        ("cub200", "CUB_200_2011.tgz", "CUB_200_2011/classes.txt"),
        ("sop", "Stanford_Online_Products.zip", "Stanford_Online_Products/Ebay_test.txt"),
    ],
)
def test_missing_member_names_the_archive(name, archive, member, tiny_dataset, tmp_path):
    data_dir = tiny_dataset(name)
    _drop_member(data_dir / name / archive, member)
    with pytest.raises(DatasetLayoutError, match=archive.split(".")[0]):
        load_index(name, data_dir, work_dir=tmp_path / "w")


def test_bad_mat_and_partition_files_are_named(tiny_dataset, tmp_path):
    data_dir = tiny_dataset("cars196")
    (data_dir / "cars196" / "cars_annos.mat").write_bytes(b"MATLAB 5.0 garbage")
    with pytest.raises(DatasetLayoutError, match=r"cars_annos.mat"):
        load_index("cars196", data_dir, work_dir=tmp_path / "w")
    data_dir = tiny_dataset("inshop")
    part = data_dir / "inshop" / "list_eval_partition.txt"
    part.write_text(part.read_text().replace("gallery\n", "validation\n", 1))
    with pytest.raises(DatasetLayoutError, match=r"list_eval_partition.txt.*validation"):
        load_index("inshop", data_dir, work_dir=tmp_path / "w")
    part.write_text("99\n" + part.read_text().split("\n", 1)[1])
    with pytest.raises(DatasetLayoutError, match="count line says 99"):
        load_index("inshop", data_dir, work_dir=tmp_path / "w")
