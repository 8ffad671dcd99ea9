-- The whole "bring your own model" flow, statement by statement.
--
-- Before running it (see examples/README.md):
--   * load the table:   python examples/home_rentals.py --sqlite ~/.byom/local/test_data.sqlite
--   * serve the models: python examples/ray_serve_model.py --port 8000
--                       mlflow models serve -m <path printed by examples/mlflow_model.py> \
--                           -h 127.0.0.1 -p 5000 --env-manager local
-- Run each statement with `byom sql "<statement>"` (or POST /api/sql). Training runs in the
-- background: wait until DESCRIBE byom shows status 'complete' before predicting.

-- 1. Datasources. `local` is the embedded SQLite datasource that always exists; the file
--    ~/.byom/local/test_data.sqlite is its schema `test_data`.
SHOW DATABASES;

SELECT count(*) AS n, max(rental_price) AS top_rent FROM local.test_data.home_rentals;

-- Any SQLAlchemy-reachable database can be added the same way (postgres works too).
CREATE DATABASE mydb
WITH ENGINE = 'sqlite',
PARAMETERS = {"path": "/tmp/byom_mydb.sqlite", "attach": {"test_data": "~/.byom/local/test_data.sqlite"}};

SHOW DATABASES;

-- 2. Register the Ray Serve model and train it on rows read from the datasource.
--    'ray_server' is MindsDB's spelling of the format and is accepted.
CREATE PREDICTOR byom
FROM mydb (
    SELECT number_of_rooms, initial_price, rental_price
    FROM test_data.home_rentals
) PREDICT number_of_rooms
USING
url.train = 'http://127.0.0.1:8000/my_model/train',
url.predict = 'http://127.0.0.1:8000/my_model/predict',
dtype_dict = {"number_of_rooms": "categorical", "initial_price": "integer", "rental_price": "integer"},
format = 'ray_server';

-- status: training ... then complete (or error, with the endpoint's message)
DESCRIBE byom;

-- 3. Predict one row from literals: the input columns, the prediction and its confidence.
SELECT * FROM byom WHERE initial_price = 3000 AND rental_price = 3000;

-- 4. Predict in batch: the WHERE is pushed down to the datasource, rows stream to the model.
SELECT tb.number_of_rooms, t.rental_price
FROM mydb.test_data.home_rentals AS t
JOIN mindsdb.byom AS tb
WHERE t.rental_price > 5300;

-- 5. Register the MLflow model (predict-only: it was trained outside the gateway).
CREATE PREDICTOR byom2
PREDICT number_of_rooms
USING
url.predict = 'http://127.0.0.1:5000/invocations',
format = 'mlflow',
data_dtype = {"initial_price": "integer", "rental_price": "integer", "number_of_rooms": "integer"};

SELECT number_of_rooms FROM byom2 WHERE initial_price = 3000 AND rental_price = 3000;

-- Both models side by side on the same rows.
SELECT t.initial_price, t.rental_price,
       a.number_of_rooms AS ray_rooms, a.confidence,
       b.number_of_rooms AS mlflow_rooms
FROM local.test_data.home_rentals AS t
JOIN byom AS a
JOIN models.byom2 AS b
WHERE t.location = 'great'
LIMIT 5;

SHOW MODELS;

-- 6. Clean up.
DROP MODEL byom;
DROP PREDICTOR byom2;
DROP DATABASE mydb;
